package instance

import "context"

// pause stops the reconcile of a paused instance here, after the finalizer (so that deleting it
// still cleans up): nothing else is read or written, and the status keeps what was last observed.
func (r *Reconciler) pause(_ context.Context, s *scope) (bool, error) {
	s.paused = s.inst.Spec.Paused
	return s.paused, nil
}
