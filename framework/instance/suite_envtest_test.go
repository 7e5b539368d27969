package instance_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/netpol"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// One API server and one manager for the package: starting them costs seconds, and each test
// works in its own namespace.
var (
	env *testenv.Env
	mgr *testenv.Manager
)

const wait = 30 * time.Second

// operatorPods is who the instances' NetworkPolicies admit as the operator.
var operatorPods = netpol.Operator{Namespace: "datafleet-system", Labels: map[string]string{"app.kubernetes.io/name": "datafleet"}}

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.New(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	if err = createCatalog(env.Client); err == nil {
		mgr, err = env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 4, NetworkPolicy: &operatorPods})
	}
	if err != nil {
		env.Stop()
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	mgr.Stop()
	env.Stop()
	os.Exit(code)
}

// setup returns the shared environment and a fresh namespace.
func setup(t *testing.T) (context.Context, client.Client, string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ctx, env.Client, ns.Name
}

func createCatalog(c client.Client) error {
	cat := &v1alpha1.VersionCatalog{
		ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name},
		Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name, Versions: []v1alpha1.CatalogVersion{
			{Version: "1", Image: "fake:1"},
			{Version: "2", Image: "fake:2", Default: true},
		}},
	}
	return c.Create(context.Background(), cat)
}

func newInstance(ns, name string) *v1alpha1.ServiceInstance {
	return &v1alpha1.ServiceInstance{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name},
	}
}

func get[T client.Object](t *testing.T, c client.Client, obj T, ns, name string) error {
	t.Helper()
	return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// markReady plays the StatefulSet controller's part (envtest runs none): it reports every
// replica of the current spec ready.
func markReady(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	testenv.Eventually(t, wait, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, c, sts, ns, name); err != nil {
			return err
		}
		testenv.MarkStatefulSetReady(sts)
		return c.Status().Update(context.Background(), sts)
	})
}

// waitPhase waits until the instance reaches the phase and returns it.
func waitPhase(t *testing.T, c client.Client, ns, name string, phase v1alpha1.InstancePhase) *v1alpha1.ServiceInstance {
	t.Helper()
	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, name); err != nil {
			return err
		}
		if si.Status.Phase != phase {
			return fmt.Errorf("phase is %q, want %q; conditions: %+v", si.Status.Phase, phase, si.Status.Conditions)
		}
		return nil
	})
	return si
}

// child is one object the fake engine renders, with its name.
type child struct {
	obj  client.Object
	name string
}

// fakeChildren lists what the fake engine renders for an instance named inst (without parameters).
func fakeChildren(inst string) []child {
	return []child{{&corev1.ConfigMap{}, inst + "-config"}, {&corev1.Service{}, inst}, {&appsv1.StatefulSet{}, inst}}
}

func condition(si *v1alpha1.ServiceInstance, t string) metav1.Condition {
	if c := meta.FindStatusCondition(si.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func quantity(s string) resource.Quantity { return resource.MustParse(s) }
