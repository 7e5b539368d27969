package binding

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// IndexInstance registers names.BindingsByInstance; call it once per manager.
func IndexInstance(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.ServiceBinding{}, names.BindingsByInstance, func(o client.Object) []string {
		return []string{InstanceKey(o.(*v1alpha1.ServiceBinding)).String()}
	})
}

// ControllerName is the binding controller's log name, metrics label and work queue.
const ControllerName = "servicebinding"

// SetupWithManager registers the controller: bindings, their Secrets, and the instances they
// refer to (readiness, TLS and the binding policy decide what a binding may have).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(opts).
		For(&v1alpha1.ServiceBinding{}).
		Owns(&corev1.Secret{}).
		Watches(&v1alpha1.ServiceInstance{}, handler.EnqueueRequestsFromMapFunc(r.bindingsOf)).
		// The published CA goes into every binding's Secret (ca.crt): a CA rotation changes it.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.bindingsOfCA)).
		Complete(r)
}

// bindingsOfCA are the bindings of the instance whose published CA cm is.
func (r *Reconciler) bindingsOfCA(ctx context.Context, cm client.Object) []reconcile.Request {
	inst := cm.GetLabels()[names.InstanceLabel]
	if inst == "" || cm.GetName() != certs.CAName(inst) {
		return nil
	}
	return r.bindingsOf(ctx, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: cm.GetNamespace(), Name: inst}})
}

func (r *Reconciler) bindingsOf(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.ServiceBindingList{}
	key := client.ObjectKeyFromObject(o).String()
	if err := r.Client.List(ctx, list, client.MatchingFields{names.BindingsByInstance: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the bindings of an instance", "instance", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, b := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&b)})
	}
	return reqs
}
