package instance

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
)

// ReasonScaleDownRefused: spec.replicas went below the running members of an engine whose
// members each hold data (engine.ScaleDownGuard).
const ReasonScaleDownRefused = "ScaleDownRefused"

// guardScaleDown stops the reconcile before anything is applied when a rendered StatefulSet has
// fewer replicas than the live one and the engine guards against that. The live StatefulSet is
// the measure, not the previous spec: a refused change stays refused after an operator restart.
func (r *Reconciler) guardScaleDown(ctx context.Context, s *scope) (bool, error) {
	guard, ok := r.Engine.(engine.ScaleDownGuard)
	if !ok {
		return false, nil
	}
	for _, o := range s.children {
		want, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		live := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return false, err
		}
		have, asked := ptr.Deref(live.Spec.Replicas, 1), ptr.Deref(want.Spec.Replicas, 1)
		if asked >= have {
			continue
		}
		s.fail(ReasonScaleDownRefused, fmt.Sprintf("spec.replicas: lowering %s from %d to %d members is refused: %s "+
			"Nothing was changed; set spec.replicas back to %d.", s.inst.Spec.Engine, have, asked, guard.ScaleDownRisk(), have))
		return true, nil
	}
	return false, nil
}
