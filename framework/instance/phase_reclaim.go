package instance

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// A namespace deletion deletes the claims whatever the instance's deletionPolicy says, and a
// claim's volume then goes the way of its reclaim policy, which for dynamically provisioned
// volumes is the storage class's, usually Delete. So the volumes of an instance with
// deletionPolicy Retain are given reclaim policy Retain while the instance lives: a namespace
// deletion leaves them Released, with their data, for an administrator to bind again (see
// docs/operations.md). Switching the instance to Delete gives them back the policy they had.
const (
	// ReclaimPolicyWasAnnotation on a volume is the reclaim policy it had before Datafleet set
	// Retain, given back when the instance's policy becomes Delete.
	ReclaimPolicyWasAnnotation = "datafleet.dev/reclaim-policy-was"
	// VolumeRetainedAnnotation on a claim names its volume once that volume's reclaim policy is
	// Retain for the instance, so that a settled reconcile reads no volume.
	VolumeRetainedAnnotation = "datafleet.dev/volume-retained"
	// VolumeNamespaceLabel on a retained volume is the namespace of the instance it belonged to
	// (with app.kubernetes.io/instance, what an administrator finds it by).
	VolumeNamespaceLabel = "datafleet.dev/namespace"
)

// reclaimPolicies is the phase that keeps the volumes' reclaim policy in line with the
// instance's deletionPolicy.
func (r *Reconciler) reclaimPolicies(ctx context.Context, s *scope) (bool, error) {
	return false, r.followDeletionPolicy(ctx, s)
}

// followDeletionPolicy sets each bound claim's volume to reclaim policy Retain when the instance
// retains its volumes, and gives a volume it set back its old policy when not.
func (r *Reconciler) followDeletionPolicy(ctx context.Context, s *scope) error {
	claims := &corev1.PersistentVolumeClaimList{}
	if err := r.Client.List(ctx, claims, client.InNamespace(s.inst.Namespace), r.selector(s)); err != nil {
		return describeErr("listing the data volumes' claims", err)
	}
	retain := s.inst.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound || !pvc.DeletionTimestamp.IsZero() {
			continue
		}
		want := ""
		if retain {
			want = pvc.Spec.VolumeName
		}
		if pvc.Annotations[VolumeRetainedAnnotation] == want {
			continue
		}
		if err := r.setReclaimPolicy(ctx, s, pvc, retain); errors.Is(err, errForeignVolume) {
			continue // not the instance's to keep or give back; the claim is left as it is
		} else if err != nil {
			return describeErr(fmt.Sprintf("setting the reclaim policy of volume %s", pvc.Spec.VolumeName), err)
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		if want == "" {
			delete(pvc.Annotations, VolumeRetainedAnnotation)
		} else {
			if pvc.Annotations == nil {
				pvc.Annotations = map[string]string{}
			}
			pvc.Annotations[VolumeRetainedAnnotation] = want
		}
		if err := r.Client.Patch(ctx, pvc, patch); err != nil {
			return describeErr("annotating claim "+pvc.Name, err)
		}
	}
	return nil
}

// errForeignVolume: the volume a claim names is bound to another claim.
var errForeignVolume = errors.New("the volume is bound to another claim")

// setReclaimPolicy sets the claim's volume to Retain (recording the policy it had, and labelling
// it with the instance it belongs to) or gives it back the recorded one. Volumes are read past
// the cache (the operator watches none) and only when bound to this very claim.
func (r *Reconciler) setReclaimPolicy(ctx context.Context, s *scope, pvc *corev1.PersistentVolumeClaim, retain bool) error {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	pv := &corev1.PersistentVolume{}
	if err := reader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); apierrors.IsNotFound(err) {
		return nil // gone already: nothing to keep or give back
	} else if err != nil {
		return err
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return errForeignVolume
	}
	patch := client.MergeFromWithOptions(pv.DeepCopy(), client.MergeFromWithOptimisticLock{})
	was, recorded := pv.Annotations[ReclaimPolicyWasAnnotation]
	switch {
	case retain:
		if pv.Labels == nil {
			pv.Labels = map[string]string{}
		}
		pv.Labels[VolumeNamespaceLabel] = s.inst.Namespace
		pv.Labels[names.InstanceLabel] = s.inst.Name
		pv.Labels[names.EngineLabel] = r.Engine.Name()
		if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			if pv.Annotations == nil {
				pv.Annotations = map[string]string{}
			}
			pv.Annotations[ReclaimPolicyWasAnnotation] = string(pv.Spec.PersistentVolumeReclaimPolicy)
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}
	case recorded:
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimPolicy(was)
		delete(pv.Annotations, ReclaimPolicyWasAnnotation)
	default:
		return nil // Retain by its storage class or its administrator: not Datafleet's to change
	}
	return r.Client.Patch(ctx, pv, patch)
}
