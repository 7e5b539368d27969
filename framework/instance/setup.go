package instance

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// EngineIndex is the field index of ServiceInstances by spec.engine.
const EngineIndex = "spec.engine"

// IndexEngine registers EngineIndex; call it once per manager.
func IndexEngine(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.ServiceInstance{}, EngineIndex, func(o client.Object) []string {
		return []string{o.(*v1alpha1.ServiceInstance).Spec.Engine}
	})
}

// ControllerName is the name of an engine's controller: its log name, metrics label and work queue.
func ControllerName(engineName string) string { return "serviceinstance-" + engineName }

// SetupWithManager registers the engine's own controller: it sees only its engine's instances and
// children, and re-reconciles them when the engine's VersionCatalog changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	name := r.Engine.Name()
	ofEngine := predicate.NewPredicateFuncs(func(o client.Object) bool {
		si, ok := o.(*v1alpha1.ServiceInstance)
		return ok && si.Spec.Engine == name
	})
	labelled := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[names.EngineLabel] == name
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName(name)).
		WithOptions(opts).
		For(&v1alpha1.ServiceInstance{}, builder.WithPredicates(ofEngine)).
		Watches(&v1alpha1.ServiceInstance{}, editsFirst, builder.WithPredicates(ofEngine))
	for _, t := range ChildTypes(r.Engine) {
		b = b.Owns(t, builder.WithPredicates(labelled))
	}
	for _, watch := range watches(r.Engine) {
		b = b.Watches(watch.Type, handler.EnqueueRequestsFromMapFunc(instanceOfLabels),
			builder.WithPredicates(append([]predicate.Predicate{labelled}, watch.Predicates...)...))
		if watch.Expires != nil {
			b = b.Watches(watch.Type, newExpiryWakes(watch.Expires).handler(), builder.WithPredicates(labelled))
		}
	}
	b = b.Watches(&v1alpha1.VersionCatalog{}, handler.EnqueueRequestsFromMapFunc(r.instancesOfCatalog),
		builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == name })))
	b = b.Watches(&v1alpha1.ServicePlan{}, handler.EnqueueRequestsFromMapFunc(r.instancesOfPlan))
	if _, ok := r.Engine.(engine.ContinuousArchiver); ok {
		b = b.Watches(&v1alpha1.BackupStore{}, handler.EnqueueRequestsFromMapFunc(r.instancesOfStore))
		b = b.Watches(&v1alpha1.Backup{}, handler.EnqueueRequestsFromMapFunc(instanceOfBackup))
	}
	return b.Complete(r)
}

// watches are the objects besides its children whose changes reconcile an instance: a
// Supervisor's pods (their readiness and roles are what it acts on), and what the engine's
// Watcher adds.
func watches(e engine.Engine) []engine.Watch {
	var out []engine.Watch
	if _, ok := e.(engine.Supervisor); ok {
		out = append(out, engine.Watch{Type: &corev1.Pod{}})
	}
	if w, ok := e.(engine.Watcher); ok {
		out = append(out, w.Watches()...)
	}
	return out
}

// instancesOfPlan maps a ServicePlan to the engine's instances on it (a plan that moved to
// another engine included: they must learn that it no longer fits them).
func (r *Reconciler) instancesOfPlan(ctx context.Context, p client.Object) []reconcile.Request {
	return r.instancesWhere(ctx, "a plan change", func(si *v1alpha1.ServiceInstance) bool { return si.Spec.Plan == p.GetName() })
}

// instanceOfLabels maps an object labelled with an instance's labels to that instance.
func instanceOfLabels(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[names.InstanceLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

func (r *Reconciler) instancesOfCatalog(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.instancesWhere(ctx, "a catalog change", func(*v1alpha1.ServiceInstance) bool { return true })
}

// instancesWhere lists the engine's instances that keep holds for, as requests; why names the
// event in the log if the list fails.
func (r *Reconciler) instancesWhere(ctx context.Context, why string, keep func(*v1alpha1.ServiceInstance) bool) []reconcile.Request {
	list := &v1alpha1.ServiceInstanceList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{EngineIndex: r.Engine.Name()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing instances for "+why)
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if si := &list.Items[i]; keep(si) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: si.Namespace, Name: si.Name}})
		}
	}
	return reqs
}
