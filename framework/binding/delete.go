package binding

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/datafleet-dev/datafleet/framework/apply"
)

// finalize runs when the binding is deleted: its users are dropped, then its Secret is deleted,
// then the finalizer goes. A restart anywhere runs it again; every step is idempotent.
//
// The users can only be dropped through the instance. When the instance is gone, so are its
// users. When it is being deleted and cannot be reached, the users go with its data, so the
// binding does not hold the instance's deletion hostage.
func (r *Reconciler) finalize(ctx context.Context, s *scope) error {
	b := s.b
	if !controllerutil.ContainsFinalizer(b, Finalizer) {
		s.finished = true
		return nil
	}
	t, err := r.resolve(ctx, s)
	if err != nil {
		return err
	}
	why, msg := s.reason, s.message
	s.notReady(ReasonDeleting, "dropping the binding's users and deleting its Secret")
	switch {
	case t != nil:
		if err := t.users.DropUsers(ctx, r.usersInput(t, b), nil); err != nil {
			if t.inst.DeletionTimestamp.IsZero() {
				s.notReady(ReasonRevokeFailed, "dropping the binding's users: %v", err)
				return fmt.Errorf("dropping the binding's users: %w", err)
			}
			r.event(b, corev1.EventTypeWarning, ReasonRevokeFailed, "Delete",
				"the instance is being deleted and its users could not be dropped (%v); they go with its data", err)
		}
	case why == ReasonEngineNotEnabled:
		// Its users cannot be dropped from here: the binding waits for an operator that can.
		s.notReady(why, "%s", msg)
		return nil
	}
	// Otherwise the instance is gone (its users with it), or its engine never had users.
	secret, err := r.ownSecret(ctx, s)
	if err != nil {
		return err
	}
	if secret != nil {
		if err := apply.Delete(ctx, r.Client, secret); err != nil {
			return err
		}
	}
	if err := apply.RemoveFinalizer(ctx, r.Client, b, Finalizer); err != nil {
		return err
	}
	s.finished = true
	return nil
}
