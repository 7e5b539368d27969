package instance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
)

// UnclaimedReconciler reports instances whose engine no controller of this manager runs, so a
// typo in spec.engine shows up as a condition rather than as silence.
type UnclaimedReconciler struct {
	Client client.Client
	// Enabled are the engines this manager runs; Known are all engines compiled in.
	Enabled, Known []string
}

// Reconcile sets Ready=False/UnknownEngine on the instance.
func (r *UnclaimedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	inst := &v1alpha1.ServiceInstance{}
	if err := r.Client.Get(ctx, req.NamespacedName, inst); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if slices.Contains(r.Enabled, inst.Spec.Engine) || !inst.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	msg := fmt.Sprintf("engine %q is not known to this operator; known engines: %s", inst.Spec.Engine, list(r.Known))
	if slices.Contains(r.Known, inst.Spec.Engine) {
		msg = fmt.Sprintf("engine %q is not enabled in this operator (enabled: %s); ask the platform team to enable it with --engines",
			inst.Spec.Engine, list(r.Enabled))
	}
	next := inst.Status.DeepCopy()
	next.Phase = v1alpha1.PhaseFailed
	meta.SetStatusCondition(&next.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: ReasonUnknownEngine, Message: msg, ObservedGeneration: inst.Generation})
	if equality.Semantic.DeepEqual(&inst.Status, next) {
		return ctrl.Result{}, nil
	}
	orig := inst.DeepCopy()
	inst.Status = *next
	return ctrl.Result{}, client.IgnoreNotFound(apply.PatchStatus(ctx, r.Client, orig, inst))
}

// SetupWithManager registers the controller.
func (r *UnclaimedReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("serviceinstance-unclaimed").
		For(&v1alpha1.ServiceInstance{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return !slices.Contains(r.Enabled, o.(*v1alpha1.ServiceInstance).Spec.Engine)
		}))).
		Complete(r)
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
