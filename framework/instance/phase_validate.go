package instance

import (
	"context"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// priorityClassPoll is how often an instance whose PriorityClass is missing looks for it again.
const priorityClassPoll = time.Minute

// validate makes the checks the schema cannot (engine.ValidateSpec): the framework's own and the
// engine's (parameters, topology), and that the PriorityClass the pods are to have exists.
func (r *Reconciler) validate(ctx context.Context, s *scope) (bool, error) {
	errs := engine.ValidateSpec(r.Engine, s.inst, s.release)
	missing, err := workload.MissingPriorityClass(ctx, r.Client, s.inst)
	if err != nil {
		return false, err
	}
	if missing != nil {
		// PriorityClasses are not watched (an instance names one, rarely): look again.
		errs = append(errs, missing)
		s.requeue(priorityClassPoll)
	}
	if len(errs) == 0 {
		return false, nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	s.fail(ReasonInvalidSpec, strings.Join(msgs, "; "))
	return true, nil
}
