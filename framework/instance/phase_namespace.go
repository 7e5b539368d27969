package instance

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;patch

// markNamespace keeps names.ProtectedLabel on the instance's namespace while any instance there
// has deletion protection. A namespace deletion removes every PVC in it whatever an instance's
// policy says; the webhook refuses it for namespaces with the label, and fails closed for them
// alone, so an operator that is down stops no other namespace's deletion.
func (r *Reconciler) markNamespace(ctx context.Context, s *scope) (bool, error) {
	return false, describeErr("labelling the namespace", r.labelNamespace(ctx, s.inst))
}

// labelNamespace reads the namespace's other instances only when it is labelled and this
// instance does not need it: a reconcile that read them all each time cost every instance of a
// namespace of n instances n copies.
func (r *Reconciler) labelNamespace(ctx context.Context, inst *v1alpha1.ServiceInstance) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: inst.Namespace}, ns); err != nil {
		return err
	}
	labelled := ns.Labels[names.ProtectedLabel] == "true"
	protected := inst.Spec.DeletionProtection
	if labelled && !protected {
		list := &v1alpha1.ServiceInstanceList{}
		// Read, never changed: the cache's own objects, not copies.
		if err := r.Client.List(ctx, list, client.InNamespace(inst.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		protected = slices.ContainsFunc(list.Items, func(i v1alpha1.ServiceInstance) bool { return i.Spec.DeletionProtection })
	}
	if labelled == protected {
		return nil
	}
	patch := client.MergeFrom(ns.DeepCopy())
	if protected {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[names.ProtectedLabel] = "true"
	} else {
		delete(ns.Labels, names.ProtectedLabel)
	}
	return r.Client.Patch(ctx, ns, patch)
}
