package binding

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// InstanceKey is the instance a binding refers to: in the binding's namespace unless it says.
func InstanceKey(b *v1alpha1.ServiceBinding) types.NamespacedName {
	ns := b.Spec.InstanceRef.Namespace
	if ns == "" {
		ns = b.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: b.Spec.InstanceRef.Name}
}

// Allowed says whether the instance's binding policy lets a binding in namespace ns bind: its own
// namespace always, others when listed or "*".
func Allowed(inst *v1alpha1.ServiceInstance, ns string) bool {
	if ns == inst.Namespace {
		return true
	}
	if inst.Spec.BindingPolicy == nil {
		return false
	}
	return slices.Contains(inst.Spec.BindingPolicy.AllowedNamespaces, ns) ||
		slices.Contains(inst.Spec.BindingPolicy.AllowedNamespaces, "*")
}

// checkTarget refuses a binding that names the kind of target its engine does not have.
func checkTarget(b *v1alpha1.ServiceBinding, users engine.UserManager) string {
	switch {
	case users.Target() != "vhost" && b.Spec.Vhost != "":
		return fmt.Sprintf("spec.vhost applies to RabbitMQ; this engine grants a %s: set spec.%s instead", users.Target(), users.Target())
	case users.Target() != "database" && b.Spec.Database != "":
		return fmt.Sprintf("spec.database applies to PostgreSQL and MongoDB; this engine grants a %s: set spec.%s instead", users.Target(), users.Target())
	}
	return ""
}
