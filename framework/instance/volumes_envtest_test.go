package instance_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Growing spec.storage.size patches the claims and re-creates the StatefulSet with larger claim
// templates (its pods orphaned, so they keep running); a storage class that does not allow
// expansion leaves everything as it was and says so. envtest has no garbage collector and no
// volume resizer: the test removes the orphan finalizer and reports the new capacity itself.
func TestStorageGrowsClaimsAndRecreatesTheStatefulSet(t *testing.T) {
	ctx, c, ns := setup(t)
	for name, allow := range map[string]bool{ns + "-expandable": true, ns + "-fixed": false} {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/none", AllowVolumeExpansion: &allow}
		if err := c.Create(ctx, sc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), sc) })
	}
	create := func(name, class string) *v1alpha1.ServiceInstance {
		si := newInstance(ns, name)
		si.Spec.Storage = &v1alpha1.StorageSpec{Size: quantity("1Gi"), StorageClassName: &class}
		if err := c.Create(ctx, si); err != nil {
			t.Fatal(err)
		}
		markReady(t, c, ns, name)
		waitPhase(t, c, ns, name, v1alpha1.PhaseReady)
		// The claim the StatefulSet controller would make, bound at 1Gi.
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + name + "-0", Namespace: ns,
			Labels: names.InstanceLabels(fakeengine.Name, name)},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: &class, VolumeName: "pv-" + name,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: quantity("1Gi")}}}}
		if err := c.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
		setCapacity(t, c, pvc, "1Gi")
		return si
	}
	grows := create("grows", ns+"-expandable")
	stays := create("stays", ns+"-fixed")
	for _, si := range []*v1alpha1.ServiceInstance{grows, stays} {
		testenv.Eventually(t, wait, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(si), si); err != nil {
				return err
			}
			si.Spec.Storage.Size = quantity("2Gi")
			return c.Update(ctx, si)
		})
	}

	// Refused: a clear condition naming the field, the old size kept, the instance still Ready.
	testenv.Eventually(t, wait, func() error {
		si := &v1alpha1.ServiceInstance{}
		if err := get(t, c, si, ns, "stays"); err != nil {
			return err
		}
		cond := condition(si, v1alpha1.ConditionStorageResized)
		if cond.Reason != "ExpansionRefused" || !strings.HasPrefix(cond.Message, "spec.storage.size: volume data-stays-0 cannot grow to 2Gi") ||
			si.Status.Phase != v1alpha1.PhaseReady || si.Status.ObservedGeneration != si.Generation {
			return testenv.Errorf("phase %s, StorageResized %+v", si.Status.Phase, cond)
		}
		return nil
	})
	if got := claimTemplateSize(t, c, ns, "stays"); got != "1Gi" {
		t.Errorf("refused expansion: the StatefulSet's template is %s", got)
	}

	// Allowed: the claim asks for 2Gi and the StatefulSet is being deleted with its pods orphaned.
	old := &appsv1.StatefulSet{}
	testenv.Eventually(t, wait, func() error {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := get(t, c, pvc, ns, "data-grows-0"); err != nil {
			return err
		}
		if err := get(t, c, old, ns, "grows"); err != nil {
			return err
		}
		if pvc.Spec.Resources.Requests.Storage().String() != "2Gi" || old.DeletionTimestamp.IsZero() || !slices.Contains(old.Finalizers, "orphan") {
			return testenv.Errorf("claim asks for %s, StatefulSet deleting %v with finalizers %v",
				pvc.Spec.Resources.Requests.Storage(), !old.DeletionTimestamp.IsZero(), old.Finalizers)
		}
		return nil
	})
	old.Finalizers = nil // what the garbage collector does once it has orphaned the pods
	if err := c.Update(ctx, old); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if got := claimTemplateSize(t, c, ns, "grows"); got != "2Gi" {
			return testenv.Errorf("the StatefulSet's claim template asks for %s", got)
		}
		return nil
	})
	waitStorage(t, c, ns, "grows", "Expanding")
	pvc := &corev1.PersistentVolumeClaim{}
	if err := get(t, c, pvc, ns, "data-grows-0"); err != nil {
		t.Fatal(err)
	}
	setCapacity(t, c, pvc, "2Gi")
	waitStorage(t, c, ns, "grows", "Resized")
}

// setCapacity plays the storage provider's part: the claim bound at size. Like a provider it
// retries on a conflict: the operator annotates a bound claim (its volume's reclaim policy), which
// may land between this read and write.
func setCapacity(t *testing.T, c client.Client, pvc *corev1.PersistentVolumeClaim, size string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		pvc.Status.Phase = corev1.ClaimBound
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: quantity(size)}
		return c.Status().Update(ctx, pvc)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func claimTemplateSize(t *testing.T, c client.Client, ns, name string) string {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := get(t, c, sts, ns, name); err != nil || len(sts.Spec.VolumeClaimTemplates) == 0 {
		return "none"
	}
	return sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()
}

func waitStorage(t *testing.T, c client.Client, ns, name, reason string) {
	t.Helper()
	testenv.Eventually(t, wait, func() error {
		si := &v1alpha1.ServiceInstance{}
		if err := get(t, c, si, ns, name); err != nil {
			return err
		}
		if cond := condition(si, v1alpha1.ConditionStorageResized); cond.Reason != reason {
			return testenv.Errorf("StorageResized %+v, want reason %s", cond, reason)
		}
		return nil
	})
}
