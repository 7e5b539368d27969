// Package managertest runs an engine inside the operator's manager on a real API server (envtest),
// for the tests that need the framework's reconcilers around the engine: Settled, and the waits
// on instances and bindings. An engine's pure tests need only enginetest, which imports none of the
// operator's wiring.
package managertest

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// AgentImage is the operator image the envtest harness gives engines.
const AgentImage = "datafleet.local/datafleet-operator:test"

// Settled runs the engine's controller on a real API server (envtest: no StatefulSet controller,
// no pods), creates inst with rel as its catalog's only version, reports its StatefulSet ready in
// the StatefulSet controller's place, and waits until settled(inst) is nil. Then it reconciles
// five more times and fails if any of that wrote to the API server: rendered children must match
// what the server stores after defaulting. It returns a client for further checks.
func Settled(t *testing.T, e engine.Engine, rel catalog.Release, inst *v1alpha1.ServiceInstance,
	settled func(*v1alpha1.ServiceInstance) error) client.Client {
	t.Helper()
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{e}, operator.Options{MaxConcurrentReconciles: 2, AgentImage: AgentImage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: e.Name()},
		Spec: v1alpha1.VersionCatalogSpec{Engine: e.Name(), Versions: []v1alpha1.CatalogVersion{{Version: rel.Version, Image: rel.Image, Default: true}}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: inst.Namespace}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
	MarkReady(t, c, key)
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		return settled(inst)
	})
	mgr.WaitQuiet(t, time.Minute)
	before := mgr.Writes.Count()
	r := &instance.Reconciler{Client: mgr.Manager.GetClient(), Scheme: mgr.Manager.GetScheme(), Engine: e,
		AgentImage: AgentImage, Recorder: mgr.Manager.GetEventRecorder("steady-state-test")}
	for range 5 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	mgr.WaitQuiet(t, time.Minute)
	if n := mgr.Writes.Count() - before; n != 0 {
		t.Fatalf("reconciling a settled %s instance made %d API writes, want 0", e.Name(), n)
	}
	return c
}

// MarkReady reports the instance's StatefulSet ready, as its controller would once every pod is.
func MarkReady(t *testing.T, c client.Client, key types.NamespacedName) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		var sts appsv1.StatefulSet
		if err := c.Get(context.Background(), key, &sts); err != nil {
			return err
		}
		testenv.MarkStatefulSetReady(&sts)
		return c.Status().Update(context.Background(), &sts)
	})
}

// RunningPod creates p and reports it running and ready on 127.0.0.1, as the StatefulSet
// controller and the kubelet would (envtest has neither); the instance's agent is then reached
// on loopback.
func RunningPod(t *testing.T, c client.Client, p *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// UpdateSpec changes the instance's spec, retrying on conflicts with the operator's own writes;
// inst is left as stored.
func UpdateSpec(t *testing.T, c client.Client, inst *v1alpha1.ServiceInstance, change func(*v1alpha1.ServiceInstanceSpec)) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		change(&inst.Spec)
		return c.Update(context.Background(), inst)
	})
}
