package instance

import (
	"context"
	"strings"

	"github.com/datafleet-dev/datafleet/framework/engine"
)

// validate makes the checks the schema cannot (engine.ValidateSpec): the framework's own and the
// engine's (parameters, topology).
func (r *Reconciler) validate(_ context.Context, s *scope) (bool, error) {
	errs := engine.ValidateSpec(r.Engine, s.inst, s.release)
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
