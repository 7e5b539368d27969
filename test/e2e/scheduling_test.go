//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// dataPriorityClass is a PriorityClass for data pods, as a platform team would create it; removed
// when the test ends.
func dataPriorityClass(t *testing.T, name string, value int32) {
	t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
		Description: "datafleet e2e: data pods"}
	if err := env.c.Create(context.Background(), pc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), pc) })
}

// dataScheduling is what the e2e asks of an instance's placement: a node selector and a toleration
// every node of the local cluster satisfies (it has no taints), and a PriorityClass.
func dataScheduling(class string) *v1alpha1.SchedulingSpec {
	return &v1alpha1.SchedulingSpec{
		NodeSelector:      map[string]string{corev1.LabelOSStable: "linux"},
		Tolerations:       []corev1.Toleration{{Key: "datafleet.dev/data", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		PriorityClassName: class,
	}
}

// checkPlacement asserts on a running pod what the kubelet and the API server made of the
// instance's scheduling and resources: the QoS class they computed, the priority the admission
// resolved from the class, and the node selector and toleration it was scheduled with.
func checkPlacement(t *testing.T, ns, name string, want *v1alpha1.SchedulingSpec, wantValue int32) {
	t.Helper()
	var p corev1.Pod
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("%s: QoS class %q, want Guaranteed (requests equal to limits on every container, the init container too)", name, p.Status.QOSClass)
	}
	if p.Spec.PriorityClassName != want.PriorityClassName || p.Spec.Priority == nil || *p.Spec.Priority != wantValue {
		t.Errorf("%s: priority class %q, priority %v; want %q, %d", name, p.Spec.PriorityClassName, p.Spec.Priority, want.PriorityClassName, wantValue)
	}
	for k, v := range want.NodeSelector {
		if p.Spec.NodeSelector[k] != v {
			t.Errorf("%s: node selector %v, want %s=%s", name, p.Spec.NodeSelector, k, v)
		}
	}
	for _, tol := range want.Tolerations {
		if !slices.ContainsFunc(p.Spec.Tolerations, func(have corev1.Toleration) bool { return have.MatchToleration(&tol) }) {
			t.Errorf("%s: tolerations %+v, want %+v among them", name, p.Spec.Tolerations, tol)
		}
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("%s: %s, want Running", name, p.Status.Phase)
	}
}

// checkDisruptionBudget asserts the instance's PodDisruptionBudget as the cluster's disruption
// controller sees it: it selects every pod of the instance, all are healthy, and a drain may take
// exactly one of them at a time.
func checkDisruptionBudget(t *testing.T, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	want := inst.DesiredReplicas()
	testenv.Eventually(t, waitTimeout, func() error {
		var pdb policyv1.PodDisruptionBudget
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(inst), &pdb); err != nil {
			return err
		}
		var pods corev1.PodList
		if err := env.c.List(context.Background(), &pods, client.InNamespace(inst.Namespace),
			client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
			return err
		}
		s := pdb.Status
		return expect(s.ObservedGeneration == pdb.Generation && s.ExpectedPods == want && s.CurrentHealthy == want &&
			s.DisruptionsAllowed == 1 && len(pods.Items) == int(want),
			fmt.Sprintf("the budget of %s covers its %d pods and allows one disruption", inst.Name, want),
			fmt.Sprintf("expected %d, healthy %d, allowed %d, observed generation %d of %d; %d pods carry the instance's labels",
				s.ExpectedPods, s.CurrentHealthy, s.DisruptionsAllowed, s.ObservedGeneration, pdb.Generation, len(pods.Items)))
	})
}
