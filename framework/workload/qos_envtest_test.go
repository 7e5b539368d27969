package workload_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The API server, not this test, decides the QoS class (it sets status.qosClass when a pod is
// created): an engine pod whose instance asks for requests equal to limits is Guaranteed, which
// needs the agent's init container to have them too. The running pods are checked in e2e.
func TestTheAPIServerGivesGuaranteedPods(t *testing.T) {
	c := testenv.Start(t).Client
	ctx := context.Background()
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	for _, tc := range []struct {
		name string
		res  corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"guaranteed", corev1.ResourceRequirements{Requests: res, Limits: res}, corev1.PodQOSGuaranteed},
		{"burstable", corev1.ResourceRequirements{Requests: res}, corev1.PodQOSBurstable},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: "default"}, Spec: agentPod(nil, tc.res)}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if pod.Status.QOSClass != tc.want {
			t.Errorf("%s resources: the API server classed the pod %q, want %q", tc.name, pod.Status.QOSClass, tc.want)
		}
	}
}
