package instance

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// Reasons of the StorageResized condition.
const (
	ReasonVolumesResized   = "Resized"
	ReasonVolumesExpanding = "Expanding"
	ReasonExpansionRefused = "ExpansionRefused"
)

// expansionPoll is how often a growing volume is looked at: claims are not watched.
const expansionPoll = 5 * time.Second

// expandVolumes grows the data volumes when a rendered StatefulSet asks for larger claims than the
// live one. A StatefulSet's claim templates are immutable, so: the claims are patched first (the
// storage class's resizer grows the volumes, online where it can); then the StatefulSet is deleted
// with its pods orphaned, and the next reconcile applies it with the new templates. It adopts the
// running pods, whose template did not change: nothing restarts. A storage class that refuses
// leaves the old templates in place, says why in StorageResized, and everything else goes on.
func (r *Reconciler) expandVolumes(ctx context.Context, s *scope) (bool, error) {
	pairs, err := r.statefulSets(ctx, s)
	if err != nil {
		return false, err
	}
	for _, p := range pairs {
		want, live := p.want, p.live
		if !live.DeletionTimestamp.IsZero() {
			// Being replaced with larger templates: apply once the orphaning is done.
			s.storage = &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonVolumesExpanding,
				Message: fmt.Sprintf("re-creating StatefulSet %s with the new volume size; its pods keep running", live.Name)}
			s.requeue(time.Second)
			return true, nil
		}
		claims, err := r.claimsOf(ctx, s, live)
		if err != nil {
			return false, err
		}
		if grown := workload.GrownClaims(live, want); len(grown) > 0 {
			for _, pvc := range claims {
				size, ok := grown[workload.ClaimOf(live, &pvc).Name]
				if !ok || pvc.Spec.Resources.Requests.Storage().Cmp(size) >= 0 {
					continue
				}
				pvc.Spec.Resources.Requests[corev1.ResourceStorage] = size
				if err := r.Client.Update(ctx, &pvc); apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
					want.Spec.VolumeClaimTemplates = live.Spec.VolumeClaimTemplates
					s.storage = &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonExpansionRefused, Message: fmt.Sprintf(
						"spec.storage.size: volume %s cannot grow to %s (%v); the volumes keep their size. A storage class that "+
							"allows volume expansion is needed, or a restore into a new, larger instance", pvc.Name, size.String(), err)}
					return false, nil
				} else if err != nil {
					return false, err
				}
			}
			if err := r.Client.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationOrphan),
				client.Preconditions{UID: &live.UID}); client.IgnoreNotFound(err) != nil {
				return false, err
			}
			s.storage = &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonVolumesExpanding,
				Message: fmt.Sprintf("growing the volumes of %s; re-creating the StatefulSet, its pods keep running", live.Name)}
			s.requeue(time.Second)
			return true, nil
		}
		s.storage = volumesState(want, claims)
		if s.storage.Status != metav1.ConditionTrue {
			s.requeue(expansionPoll)
		}
	}
	return false, nil
}

// statefulSet is a rendered StatefulSet and the live one.
type statefulSet struct{ want, live *appsv1.StatefulSet }

// statefulSets pairs each rendered StatefulSet that exists with the live one.
func (r *Reconciler) statefulSets(ctx context.Context, s *scope) ([]statefulSet, error) {
	var out []statefulSet
	for _, o := range s.children {
		want, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		live := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, statefulSet{want: want, live: live})
	}
	return out, nil
}

// claimsOf lists the claims made from the StatefulSet's templates.
func (r *Reconciler) claimsOf(ctx context.Context, s *scope, sts *appsv1.StatefulSet) ([]corev1.PersistentVolumeClaim, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.Client.List(ctx, list, client.InNamespace(sts.Namespace), r.selector(s)); err != nil {
		return nil, err
	}
	var out []corev1.PersistentVolumeClaim
	for _, pvc := range list.Items {
		if workload.ClaimOf(sts, &pvc) != nil {
			out = append(out, pvc)
		}
	}
	return out, nil
}

// volumesState compares the claims' capacity with what the templates ask for.
func volumesState(sts *appsv1.StatefulSet, claims []corev1.PersistentVolumeClaim) *metav1.Condition {
	pending := 0
	for _, pvc := range claims {
		t := workload.ClaimOf(sts, &pvc)
		if t != nil && pvc.Status.Phase == corev1.ClaimBound && pvc.Status.Capacity.Storage().Cmp(*t.Spec.Resources.Requests.Storage()) < 0 {
			pending++
		}
	}
	if pending > 0 {
		return &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonVolumesExpanding,
			Message: fmt.Sprintf("%d of %d volumes are still growing", pending, len(claims))}
	}
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonVolumesResized, Message: "every volume has the requested size"}
}

// storageCondition is the StorageResized condition to record, if this reconcile learned it.
func storageCondition(s *scope) *metav1.Condition {
	if s.storage == nil {
		return nil
	}
	c := *s.storage
	c.Type = v1alpha1.ConditionStorageResized
	return &c
}
