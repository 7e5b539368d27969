package instance

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// ReasonScaleDownRefused: spec.replicas went below the running members of an engine whose
// members each hold data (engine.ScaleDownGuard), and spec.scaleDown is not Drain.
const ReasonScaleDownRefused = "ScaleDownRefused"

// DrainedAnnotation marks the volume claims of members a scale-down drained: only those are
// deleted once their pods are gone, not the volumes a StatefulSet retained before (an earlier
// scale-down by an operator that kept them, a platform team's own), which an operator upgrade
// would otherwise delete without being asked.
const DrainedAnnotation = "datafleet.dev/drained"

// guardScaleDown handles a rendered StatefulSet with fewer replicas than the live one, for
// engines that drain leaving members (engine.MemberDrainer) or guard against it
// (engine.ScaleDownGuard). The live StatefulSet is the measure, not the previous spec: a refused
// change stays refused after an operator restart.
func (r *Reconciler) guardScaleDown(ctx context.Context, s *scope) (bool, error) {
	drainer, ok := r.Engine.(engine.MemberDrainer)
	if !ok {
		return false, nil
	}
	guard, guarded := r.Engine.(engine.ScaleDownGuard)
	pairs, err := r.statefulSets(ctx, s)
	if err != nil {
		return false, err
	}
	for _, p := range pairs {
		want, live := p.want, p.live
		have, asked := ptr.Deref(live.Spec.Replicas, 1), ptr.Deref(want.Spec.Replicas, 1)
		drain := !guarded || s.inst.Spec.ScaleDown == v1alpha1.ScaleDownDrain
		switch {
		case asked >= have && drain:
			if err := r.deleteDrainedClaims(ctx, s, live, asked); err != nil {
				return false, err
			}
		case asked >= have:
		case !drain:
			s.fail(ReasonScaleDownRefused, fmt.Sprintf("spec.replicas: lowering %s from %d to %d members is refused: %s "+
				"Nothing was changed; set spec.replicas back to %d, or spec.scaleDown to Drain.",
				s.inst.Spec.Engine, have, asked, guard.ScaleDownRisk(), have))
			return true, nil
		default:
			if err := r.drainLeaving(ctx, s, drainer, want, live, have, asked); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// drainLeaving drains the members above asked, highest first. Until all are drained the
// StatefulSet keeps its replicas (everything else in the spec is applied meanwhile).
func (r *Reconciler) drainLeaving(ctx context.Context, s *scope, drainer engine.MemberDrainer, want, live *appsv1.StatefulSet, have, asked int32) error {
	in := engine.SuperviseInput{Instance: s.inst, Release: s.release, Client: r.Client, APIReader: r.APIReader, Children: s.children,
		Owner: r.ownerRef(s.inst), Now: r.now(), Agents: s.agents}
	for ord := have - 1; ord >= asked; ord-- {
		pod := fmt.Sprintf("%s-%d", live.Name, ord)
		if err := drainer.DrainMember(ctx, in, pod); err != nil {
			log.FromContext(ctx).Info("draining a leaving member; trying again", "pod", pod, "reason", err.Error())
			want.Spec.Replicas = live.Spec.Replicas
			s.requeue(5 * time.Second)
			return nil
		}
	}
	claims, err := r.claimsOf(ctx, s, live)
	if err != nil {
		return err
	}
	for i := range claims {
		pvc := &claims[i]
		// Only the members drained here: a claim of a higher ordinal is one retained from before.
		if ord := workload.Ordinal(pvc.Name); ord < int(asked) || ord >= int(have) || pvc.Annotations[DrainedAnnotation] == "true" {
			continue
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, DrainedAnnotation, "true")
		if err := r.Client.Patch(ctx, pvc, patch); err != nil {
			return fmt.Errorf("marking %s as a drained member's volume: %w", pvc.Name, err)
		}
	}
	log.FromContext(ctx).Info("leaving members drained: scaling down", "from", have, "to", asked)
	return nil
}

// deleteDrainedClaims deletes the volumes of members removed by a drained scale-down
// (DrainedAnnotation) once their pods are gone: a member that came back on one would carry the
// membership it was removed from, or a stale copy of the data.
func (r *Reconciler) deleteDrainedClaims(ctx context.Context, s *scope, live *appsv1.StatefulSet, replicas int32) error {
	claims, err := r.claimsOf(ctx, s, live)
	if err != nil {
		return err
	}
	for _, pvc := range claims {
		ord := workload.Ordinal(pvc.Name)
		if ord < int(replicas) || pvc.Annotations[DrainedAnnotation] != "true" {
			continue
		}
		pod := fmt.Sprintf("%s-%d", live.Name, ord)
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: live.Namespace, Name: pod}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			s.requeue(5 * time.Second) // still stopping (or unreadable): look again
			continue
		}
		if err := r.Client.Delete(ctx, &pvc, client.Preconditions{UID: &pvc.UID}); client.IgnoreNotFound(err) != nil {
			return err
		}
		log.FromContext(ctx).Info("deleted the volume of a drained member", "claim", pvc.Name)
	}
	return nil
}
