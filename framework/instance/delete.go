package instance

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
)

// reconcileDelete runs when the instance has a deletion timestamp: it honours deletion protection,
// lets the engine clean up, removes every child (and the data volumes when the policy says
// Delete), and only then releases the finalizer. Each step is idempotent, so a restart halfway
// simply runs it again.
func (r *Reconciler) reconcileDelete(ctx context.Context, s *scope) (ctrl.Result, error) {
	if r.Rollout != nil {
		r.Rollout.Forget(client.ObjectKeyFromObject(s.inst)) // it will not come back Ready
	}
	if !controllerutil.ContainsFinalizer(s.inst, Finalizer) {
		s.deleted = true
		return ctrl.Result{}, nil
	}
	st := s.inst.Status.DeepCopy()
	s.deleting = st
	setCond := func(status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionDeletionBlocked,
			Status: status, Reason: reason, Message: msg, ObservedGeneration: s.inst.Generation})
	}

	if s.inst.Spec.DeletionProtection {
		msg := fmt.Sprintf("deletion protection is on, so the instance and its data are kept; to let the deletion proceed run: "+
			"kubectl patch serviceinstance %s -n %s --type merge -p '{\"spec\":{\"deletionProtection\":false}}'",
			s.inst.Name, s.inst.Namespace)
		if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionDeletionBlocked); (c == nil || c.Status != metav1.ConditionTrue) && r.Recorder != nil {
			r.Recorder.Eventf(s.inst, nil, corev1.EventTypeWarning, ReasonDeletionProtected, "Delete", "%s", msg)
		}
		setCond(metav1.ConditionTrue, ReasonDeletionProtected, msg)
		return ctrl.Result{}, nil
	}
	setCond(metav1.ConditionFalse, ReasonDeletionNotBlocked, "")
	if _, err := r.markNamespace(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	st.Phase = v1alpha1.PhaseDeleting
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: ReasonDeleting, Message: "the instance is being deleted", ObservedGeneration: s.inst.Generation})

	if n, err := r.deleteBindings(ctx, s); err != nil || n > 0 {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: ReasonDeleting, ObservedGeneration: s.inst.Generation,
			Message: fmt.Sprintf("the instance is being deleted; waiting for its %d binding(s) to drop their users", n)})
		return ctrl.Result{RequeueAfter: r.deletionRequeue()}, err
	}

	remaining, err := r.deleteChildren(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if remaining > 0 {
		return ctrl.Result{RequeueAfter: r.deletionRequeue()}, nil
	}
	// Retained volumes keep their data, and the data keeps the credentials it was made with (an
	// administrator, a cookie, a keyfile): the generated Secrets stay for the instance created
	// again over the volumes, which adopts them, instead of being locked out of its own data.
	if s.inst.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		if err := secrets.OrphanGenerated(ctx, r.Client, s.inst.Namespace, r.selector(s), s.inst.UID); err != nil {
			return ctrl.Result{}, describeErr("keeping the generated Secrets", err)
		}
	}

	if err := apply.RemoveFinalizer(ctx, r.Client, s.inst, Finalizer); err != nil {
		return ctrl.Result{}, describeErr("removing finalizer", err)
	}
	s.deleted = true
	return ctrl.Result{}, nil
}

// deleteBindings deletes the bindings of the instance, in any namespace, and returns how many
// are left. They go first, while the instance still runs: each drops its users and its Secret.
func (r *Reconciler) deleteBindings(ctx context.Context, s *scope) (int, error) {
	list := &v1alpha1.ServiceBindingList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{names.BindingsByInstance: client.ObjectKeyFromObject(s.inst).String()}); err != nil {
		return 0, describeErr("listing the instance's bindings", err)
	}
	objs := make([]client.Object, len(list.Items))
	for i := range list.Items {
		objs[i] = &list.Items[i]
	}
	return len(objs), r.deleteAll(ctx, objs)
}

// deleteChildren deletes what is left and returns how many children still exist.
func (r *Reconciler) deleteChildren(ctx context.Context, s *scope) (int, error) {
	remaining := 0
	for _, t := range ChildTypes(r.Engine) {
		gvk, err := apply.GVKFor(r.Scheme, t)
		if err != nil {
			return 0, err
		}
		objs, err := apply.List(ctx, r.Client, r.Scheme, gvk, s.inst.Namespace, r.selector(s), s.inst.UID)
		if err != nil {
			return 0, err
		}
		remaining += len(objs)
		if err := r.deleteAll(ctx, objs); err != nil {
			return 0, err
		}
	}
	// Data volumes are created by the StatefulSet controller, not owned by the instance: they are
	// found by label, and only removed when the policy says so, their reclaim policy set to match
	// it first (a policy switched just before the deletion). A deleted PVC stays until no pod
	// uses it (pvc-protection); the deletion is requested, so there is no need to wait for it.
	if err := r.followDeletionPolicy(ctx, s); err != nil {
		return 0, err
	}
	if s.inst.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete {
		gvk := corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim")
		pvcs, err := apply.List(ctx, r.Client, r.Scheme, gvk, s.inst.Namespace, r.selector(s), "")
		if err != nil {
			return 0, err
		}
		if err := r.deleteAll(ctx, pvcs); err != nil {
			return 0, err
		}
	}
	return remaining, nil
}

// deleteAll deletes the objects not already being deleted.
func (r *Reconciler) deleteAll(ctx context.Context, objs []client.Object) error {
	for _, o := range objs {
		if !o.GetDeletionTimestamp().IsZero() {
			continue
		}
		if err := apply.Delete(ctx, r.Client, o); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) deletionRequeue() time.Duration {
	if r.DeletionRequeue > 0 {
		return r.DeletionRequeue
	}
	return 2 * time.Second
}
