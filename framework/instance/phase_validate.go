package instance

import (
	"context"
	"strings"
)

// validate lets the engine check what only it understands (parameters, topology).
func (r *Reconciler) validate(_ context.Context, s *scope) (bool, error) {
	errs := r.Engine.Validate(s.inst, s.release)
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
