package instance

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/datafleet-dev/datafleet/framework/maintenance"
)

// validate lets the engine check what only it understands (parameters, topology), after the
// framework's own checks the schema cannot make (the maintenance window's time zone).
func (r *Reconciler) validate(_ context.Context, s *scope) (bool, error) {
	errs := append(maintenance.Validate(s.inst.Spec.MaintenanceWindow, field.NewPath("spec", "maintenanceWindow")),
		r.Engine.Validate(s.inst, s.release)...)
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
