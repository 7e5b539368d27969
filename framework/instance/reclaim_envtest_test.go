package instance_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An instance that retains its volumes gives them reclaim policy Retain while it lives, so that a
// namespace deletion (which deletes the claims whatever the instance says) leaves the data on a
// Released volume, labelled with the instance it belonged to; switched to Delete, the volumes get
// their old policy back. A claim whose volume is bound to another claim changes nothing.
func TestRetainedVolumesKeepTheirDataPastTheirClaims(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error { return get(t, c, &appsv1.StatefulSet{}, ns, "db") })
	// The StatefulSet controller's claim, bound by the PV controller (envtest runs neither) to a
	// volume whose storage class deletes it with its claim.
	mine := bind(t, c, dataVolume(ns, "data-db-0", "db"), ns+"-mine")
	// A claim made to look like the instance's, naming a volume bound to another claim.
	other := bind(t, c, dataVolume(ns, "elsewhere", "other"), ns+"-other")
	forged := dataVolume(ns, "data-db-1", "db")
	forged.Spec.VolumeName = other.Name
	if err := c.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	forged.Status.Phase = corev1.ClaimBound
	if err := c.Status().Update(ctx, forged); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "db") // a reconcile once the claims are bound

	volume := func(name string, policy corev1.PersistentVolumeReclaimPolicy, was string) func() error {
		return func() error {
			pv := &corev1.PersistentVolume{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, pv); err != nil {
				return err
			}
			if pv.Spec.PersistentVolumeReclaimPolicy != policy || pv.Annotations[instance.ReclaimPolicyWasAnnotation] != was {
				return fmt.Errorf("volume %s: reclaim policy %s, recorded %q; want %s, %q", name,
					pv.Spec.PersistentVolumeReclaimPolicy, pv.Annotations[instance.ReclaimPolicyWasAnnotation], policy, was)
			}
			if policy == corev1.PersistentVolumeReclaimRetain &&
				(pv.Labels[instance.VolumeNamespaceLabel] != ns || pv.Labels[names.InstanceLabel] != "db") {
				return fmt.Errorf("volume %s is labelled %v: an administrator cannot find it by its instance", name, pv.Labels)
			}
			return nil
		}
	}
	testenv.Eventually(t, wait, volume(mine.Name, corev1.PersistentVolumeReclaimRetain, "Delete"))

	setPolicy := func(p v1alpha1.DeletionPolicy) {
		t.Helper()
		testenv.Eventually(t, wait, func() error {
			if err := get(t, c, si, ns, "db"); err != nil {
				return err
			}
			si.Spec.DeletionPolicy = p
			return c.Update(ctx, si)
		})
	}
	setPolicy(v1alpha1.DeletionPolicyDelete)
	testenv.Eventually(t, wait, volume(mine.Name, corev1.PersistentVolumeReclaimDelete, ""))
	setPolicy(v1alpha1.DeletionPolicyRetain)
	testenv.Eventually(t, wait, volume(mine.Name, corev1.PersistentVolumeReclaimRetain, "Delete"))
	if err := volume(other.Name, corev1.PersistentVolumeReclaimDelete, "")(); err != nil {
		t.Errorf("a volume bound to another claim was changed: %v", err)
	}
}

// bind creates the claim and a volume bound to it, as the PV controller would, with reclaim
// policy Delete; it returns the volume.
func bind(t *testing.T, c client.Client, pvc *corev1.PersistentVolumeClaim, volume string) *corev1.PersistentVolume {
	t.Helper()
	ctx := context.Background()
	pvc.Spec.VolumeName = volume
	if err := c.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: volume},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: quantity("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + volume}},
		}}
	if err := c.Create(ctx, pv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), pv) })
	pvc.Status.Phase = corev1.ClaimBound
	if err := c.Status().Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	return pv
}
