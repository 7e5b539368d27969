package binding

import (
	"fmt"
	"slices"
	"strings"

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
// namespace always, others when listed (in allowedNamespaces, "*" there, or in namespaces).
func Allowed(inst *v1alpha1.ServiceInstance, ns string) bool {
	if ns == inst.Namespace {
		return true
	}
	p := inst.Spec.BindingPolicy
	if p == nil {
		return false
	}
	return slices.Contains(p.AllowedNamespaces, ns) || slices.Contains(p.AllowedNamespaces, "*") ||
		slices.ContainsFunc(p.Namespaces, func(n v1alpha1.NamespaceBindingPolicy) bool { return n.Namespace == ns })
}

// Refusal is why a binding from another namespace may not have what it asks for.
type Refusal struct {
	// Reason is the Ready condition's: ReasonRoleNotAllowed or ReasonTargetNotShared.
	Reason string
	// Field is the binding's field at fault: "role", or the engine's target ("database", "vhost").
	Field   string
	Message string
}

// CheckGrant refuses a binding from another (allowed) namespace a role above its namespace's
// maxRole, a target that is neither named after its namespace nor shared, and admin on a shared
// target. Bindings of the instance's own namespace get nil. Pure: the webhook and the controller
// both decide with it.
func CheckGrant(inst *v1alpha1.ServiceInstance, b *v1alpha1.ServiceBinding, users engine.UserManager) *Refusal {
	ns := b.Namespace
	if ns == inst.Namespace {
		return nil
	}
	p := inst.Spec.BindingPolicy
	if p == nil {
		p = &v1alpha1.BindingPolicy{}
	}
	role, most := roleOf(b), MaxRole(p, ns)
	if rank(role) > rank(most) {
		return &Refusal{ReasonRoleNotAllowed, "role", fmt.Sprintf("bindings from namespace %q may have %s at most on ServiceInstance %s/%s "+
			"(spec.bindingPolicy of the instance)", ns, most, inst.Namespace, inst.Name)}
	}
	target := engine.BindingTarget(b, users)
	if target == ns || strings.HasPrefix(target, ns+"_") {
		return nil // named after the namespace: its own
	}
	if !slices.Contains(p.SharedTargets, target) {
		return &Refusal{ReasonTargetNotShared, users.Target(), fmt.Sprintf("%s %q of ServiceInstance %s/%s is not shared with other namespaces: "+
			"use %q or a name starting with %q, or ask the instance's owners to list it in spec.bindingPolicy.sharedTargets",
			users.Target(), target, inst.Namespace, inst.Name, ns, ns+"_")}
	}
	if role == v1alpha1.RoleAdmin {
		return &Refusal{ReasonRoleNotAllowed, "role", fmt.Sprintf("%s %q is shared: other namespaces may read and write it, never administer it "+
			"(admin is given on the %ss named after the binding's namespace)", users.Target(), target, users.Target())}
	}
	return nil
}

// MaxRole is the highest role bindings from namespace ns may have: its entry in namespaces, else
// maxRole, else readWrite.
func MaxRole(p *v1alpha1.BindingPolicy, ns string) v1alpha1.BindingRole {
	for _, n := range p.Namespaces {
		if n.Namespace == ns {
			return n.MaxRole
		}
	}
	if p.MaxRole != "" {
		return p.MaxRole
	}
	return v1alpha1.RoleReadWrite
}

func roleOf(b *v1alpha1.ServiceBinding) v1alpha1.BindingRole {
	if b.Spec.Role == "" {
		return v1alpha1.RoleReadWrite // the CRD's default
	}
	return b.Spec.Role
}

// rank orders roles by what they grant; an unknown role ranks above admin, so it is never allowed.
func rank(r v1alpha1.BindingRole) int {
	switch r {
	case v1alpha1.RoleReadOnly:
		return 1
	case v1alpha1.RoleReadWrite:
		return 2
	case v1alpha1.RoleAdmin:
		return 3
	}
	return 4
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
