package instance

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/plan"
)

// applyPlan fills in what the instance's spec leaves unset from its ServicePlan, in memory only.
// The webhook refuses an instance outside its plan's limits; the reconciler checks again because a
// plan can change (or go) after the instance was admitted, and reports it rather than applying it.
func (r *Reconciler) applyPlan(ctx context.Context, s *scope) (bool, error) {
	name := s.inst.Spec.Plan
	if name == "" {
		return false, nil
	}
	p := &v1alpha1.ServicePlan{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
		if ignoreGone(err) != nil {
			return false, describeErr("reading ServicePlan", err)
		}
		s.fail(plan.ReasonNotFound, fmt.Sprintf("no ServicePlan named %q exists", name))
		return true, nil
	}
	if p.Spec.Engine != r.Engine.Name() {
		s.fail(plan.ReasonWrongEngine, fmt.Sprintf("ServicePlan %s is for %s instances, not %s", name, p.Spec.Engine, r.Engine.Name()))
		return true, nil
	}
	if errs := plan.Check(&s.inst.Spec, p); len(errs) > 0 {
		s.fail(plan.ReasonOutsideLimits, errs.ToAggregate().Error())
		return true, nil
	}
	plan.Apply(&s.inst.Spec, p)
	return false, nil
}
