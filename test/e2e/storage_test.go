//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// expandStorage grows every data volume of the instance to size and checks it happened online:
// each claim has the capacity, StorageResized is True for this generation, the instance is Ready,
// the re-created StatefulSet's claim template asks for the size, and no pod was replaced.
func expandStorage(t *testing.T, inst *v1alpha1.ServiceInstance, size string) {
	t.Helper()
	ctx := context.Background()
	n := int(inst.DesiredReplicas())
	uids := make([]string, n)
	for i := range uids {
		uids[i] = podUID(t, inst.Namespace, fmt.Sprintf("%s-%d", inst.Name, i))
	}
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) {
		if s.Storage == nil {
			s.Storage = &v1alpha1.StorageSpec{}
		}
		s.Storage.Size = resource.MustParse(size)
	})
	waitInstance(t, inst, waitTimeout, "every volume has grown to "+size, func() (bool, string) {
		grown := 0
		var caps []string
		for i := range n {
			var pvc corev1.PersistentVolumeClaim
			if err := env.c.Get(ctx, client.ObjectKey{Namespace: inst.Namespace, Name: fmt.Sprintf("data-%s-%d", inst.Name, i)}, &pvc); err != nil {
				return false, err.Error()
			}
			if pvc.Status.Capacity.Storage().String() == size {
				grown++
			}
			caps = append(caps, pvc.Status.Capacity.Storage().String())
		}
		c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionStorageResized)
		return grown == n && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == inst.Generation && inst.Status.Phase == v1alpha1.PhaseReady,
			fmt.Sprintf("capacities %v, StorageResized %+v, phase %s", caps, c, inst.Status.Phase)
	})
	var sts appsv1.StatefulSet
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), &sts); err != nil {
		t.Fatal(err)
	}
	if got := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String(); got != size {
		t.Errorf("the re-created StatefulSet's claim template asks for %s", got)
	}
	for i, uid := range uids {
		if podUID(t, inst.Namespace, fmt.Sprintf("%s-%d", inst.Name, i)) != uid {
			t.Errorf("growing the volumes replaced %s-%d", inst.Name, i)
		}
	}
}
