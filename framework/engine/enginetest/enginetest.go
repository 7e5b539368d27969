// Package enginetest is the conformance suite every engine runs from its own tests:
//
//	func TestConformance(t *testing.T) { enginetest.Run(t, enginetest.Suite{Engine: myengine.New(), ...}) }
//
// It checks what the framework relies on: rendering is deterministic and pure, every child is a
// namespaced kind the engine declared in ChildTypes, names are unique and fit Kubernetes limits
// even for the longest instance name, and every decorated child is owned by its instance.
package enginetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// Suite describes the engine under test.
type Suite struct {
	Engine  engine.Engine
	Release catalog.Release
	// AgentImage is passed to Render, for engines whose pods run the instance agent.
	AgentImage string
	// Instances are valid specs to render (the suite adds a long-named copy of each). When empty,
	// a one-replica and a three-replica instance are used.
	Instances []*v1alpha1.ServiceInstance
}

// LongName is the longest name the ServiceInstance CRD accepts.
var LongName = "a" + strings.Repeat("b", 50) + "c"

// clusterScoped lists the built-in kinds an engine must never render.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "StorageClass": true, "CustomResourceDefinition": true,
	"PriorityClass": true, "ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"VersionCatalog": true, "ServicePlan": true,
}

// Run runs the conformance suite.
func Run(t *testing.T, s Suite) {
	t.Helper()
	scheme := engine.NewScheme()
	if s.Release.Image == "" {
		s.Release = catalog.Release{Version: "1", Image: "example.invalid/engine:1"}
	}
	insts := s.Instances
	if len(insts) == 0 {
		insts = []*v1alpha1.ServiceInstance{Instance(s.Engine.Name(), "one", 1), Instance(s.Engine.Name(), "three", 3)}
	}
	var all []*v1alpha1.ServiceInstance
	for _, in := range insts {
		long := in.DeepCopy()
		long.Name = LongName
		all = append(all, in, long)
	}
	for _, inst := range all {
		t.Run(fmt.Sprintf("%s/replicas=%d", inst.Name, inst.DesiredReplicas()), func(t *testing.T) {
			if errs := s.Engine.Validate(inst, s.Release); len(errs) > 0 {
				t.Fatalf("fixture should be valid: %v", errs.ToAggregate())
			}
			first := render(t, s, inst)
			second := render(t, s, inst)
			t.Run("deterministic", func(t *testing.T) { checkDeterministic(t, scheme, first, second) })
			t.Run("pure", func(t *testing.T) {
				before := inst.DeepCopy()
				render(t, s, inst)
				if !equality.Semantic.DeepEqual(before, inst) {
					t.Fatal("Render modified the instance it was given")
				}
			})
			t.Run("declared-namespaced-kinds", func(t *testing.T) { checkKinds(t, scheme, s.Engine, first) })
			t.Run("names", func(t *testing.T) { checkNames(t, scheme, first) })
			t.Run("owned-and-labelled", func(t *testing.T) { checkDecorated(t, scheme, s, inst, first) })
		})
	}
}

// Instance returns a minimal valid instance of the engine.
func Instance(engineName, name string, replicas int32) *v1alpha1.ServiceInstance {
	return &v1alpha1.ServiceInstance{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceInstance"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "conformance", UID: types.UID("uid-" + name), Generation: 1},
		Spec:       v1alpha1.ServiceInstanceSpec{Engine: engineName, Replicas: &replicas},
	}
}

func render(t *testing.T, s Suite, inst *v1alpha1.ServiceInstance) []client.Object {
	t.Helper()
	objs, err := s.Engine.Render(engine.RenderInput{Instance: inst, Release: s.Release, AgentImage: s.AgentImage})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("Render returned no objects")
	}
	return objs
}

func checkDeterministic(t *testing.T, scheme *runtime.Scheme, a, b []client.Object) {
	if len(a) != len(b) {
		t.Fatalf("two renders returned %d and %d objects", len(a), len(b))
	}
	for i := range a {
		ua, err := apply.ToUnstructured(scheme, a[i])
		if err != nil {
			t.Fatal(err)
		}
		ub, err := apply.ToUnstructured(scheme, b[i])
		if err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(ua.Object, ub.Object) {
			t.Errorf("object %d (%s %s) differs between two renders of the same input", i, ua.GetKind(), ua.GetName())
		}
	}
}

func checkKinds(t *testing.T, scheme *runtime.Scheme, e engine.Engine, objs []client.Object) {
	declared := map[string]bool{}
	for _, ct := range e.ChildTypes() {
		gvk, err := apply.GVKFor(scheme, ct)
		if err != nil {
			t.Fatalf("ChildTypes: %v", err)
		}
		declared[gvk.String()] = true
	}
	for _, o := range objs {
		gvk, err := apply.GVKFor(scheme, o)
		if err != nil {
			t.Fatalf("%T is not in the manager's scheme: %v", o, err)
		}
		if clusterScoped[gvk.Kind] {
			t.Errorf("%s %s is cluster-scoped: engines render namespaced children only", gvk.Kind, o.GetName())
		}
		if !declared[gvk.String()] {
			t.Errorf("%s %s is not in ChildTypes(): it would be neither watched nor pruned", gvk.Kind, o.GetName())
		}
		if o.GetNamespace() != "" {
			t.Errorf("%s %s sets a namespace: the framework sets it to the instance's", gvk.Kind, o.GetName())
		}
	}
}

func checkNames(t *testing.T, scheme *runtime.Scheme, objs []client.Object) {
	seen := map[string]bool{}
	for _, o := range objs {
		gvk, _ := apply.GVKFor(scheme, o)
		key := gvk.Kind + "/" + o.GetName()
		if seen[key] {
			t.Errorf("two children are named %s", key)
		}
		seen[key] = true
		var errs []string
		switch o.(type) {
		case *corev1.Service:
			errs = validation.IsDNS1035Label(o.GetName())
		case *appsv1.StatefulSet:
			errs = validation.IsDNS1123Label(o.GetName())
			if len(o.GetName()) > names.MaxStatefulSet {
				errs = append(errs, fmt.Sprintf("longer than %d characters, so its pods' controller-revision-hash label would not fit", names.MaxStatefulSet))
			}
		default:
			errs = validation.IsDNS1123Subdomain(o.GetName())
		}
		for _, e := range errs {
			t.Errorf("%s: invalid name: %s", key, e)
		}
	}
}

func checkDecorated(t *testing.T, scheme *runtime.Scheme, s Suite, inst *v1alpha1.ServiceInstance, objs []client.Object) {
	for _, o := range objs {
		if err := engine.Decorate(scheme, s.Engine.Name(), inst, s.Release.Version, o); err != nil {
			t.Fatalf("decorating %s: %v", o.GetName(), err)
		}
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.UID != inst.UID {
			t.Errorf("%s is not controlled by its instance", o.GetName())
		}
		if o.GetNamespace() != inst.Namespace {
			t.Errorf("%s is in namespace %q, not the instance's", o.GetName(), o.GetNamespace())
		}
		for k, v := range o.GetLabels() {
			for _, e := range validation.IsValidLabelValue(v) {
				t.Errorf("%s: label %s=%q: %s", o.GetName(), k, v, e)
			}
		}
		if sts, ok := o.(*appsv1.StatefulSet); ok {
			for k, v := range names.InstanceLabels(s.Engine.Name(), inst.Name) {
				if sts.Spec.Template.Labels[k] != v {
					t.Errorf("StatefulSet %s: pod template lacks label %s=%s, so its pods would escape the manager's cache", sts.Name, k, v)
				}
			}
			for _, pvc := range sts.Spec.VolumeClaimTemplates {
				if pvc.Labels[names.InstanceLabel] != inst.Name || pvc.Labels[names.ManagedByLabel] != names.ManagedBy {
					t.Errorf("StatefulSet %s: volume claim template %s lacks the instance labels, so deletionPolicy could not find its volumes", sts.Name, pvc.Name)
				}
			}
		}
	}
}

// PodTemplate renders in and returns the StatefulSet's pod template as JSON, for tests of what
// does and does not restart the pods.
func PodTemplate(t *testing.T, e engine.Engine, in engine.RenderInput) string {
	t.Helper()
	objs, err := e.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if sts, ok := o.(*appsv1.StatefulSet); ok {
			b, err := json.Marshal(sts.Spec.Template)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatal("Render returned no StatefulSet")
	return ""
}

// ExpectErrors checks that errs are exactly as many as want and that each starts with its want,
// in order: Validate's messages are what users read.
func ExpectErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	got := make([]string, 0, len(errs))
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}
