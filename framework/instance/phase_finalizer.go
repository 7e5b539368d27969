package instance

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// ensureFinalizer adds the finalizer before anything is created, so no child can outlive the
// instance unnoticed.
func (r *Reconciler) ensureFinalizer(ctx context.Context, s *scope) (bool, error) {
	if controllerutil.ContainsFinalizer(s.inst, Finalizer) {
		return false, nil
	}
	before := s.inst.DeepCopy()
	controllerutil.AddFinalizer(s.inst, Finalizer)
	if err := r.Client.Patch(ctx, s.inst, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, describeErr("adding finalizer", err)
	}
	return false, nil
}
