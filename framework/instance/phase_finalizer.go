package instance

import (
	"context"

	"github.com/datafleet-dev/datafleet/framework/apply"
)

// ensureFinalizer adds the finalizer before anything is created, so no child can outlive the
// instance unnoticed.
func (r *Reconciler) ensureFinalizer(ctx context.Context, s *scope) (bool, error) {
	if err := apply.AddFinalizer(ctx, r.Client, s.inst, Finalizer); err != nil {
		return false, describeErr("adding finalizer", err)
	}
	return false, nil
}
