package webhook

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// BindingValidator refuses, at admission, a ServiceBinding whose target its instance's engine
// reserves (engine.UserManager.CheckTarget): PostgreSQL's maintenance database, MongoDB's admin, …,
// and one from another namespace that the instance's bindingPolicy does not grant its role or its
// target (binding.CheckGrant).
// The binding controller checks the same again, so a binding admitted while the webhook was off
// gets nothing either; that is also why the chart lets bindings in when no replica answers
// (failurePolicy Ignore).
//
// It says nothing about an instance the binding's namespace may not bind (one that does not exist,
// another namespace's that does not allow it): an answer from here would tell any namespace which
// instances exist elsewhere and their engines.
type BindingValidator struct {
	Client  client.Reader
	Engines map[string]engine.Engine
}

var _ admission.Validator[*v1alpha1.ServiceBinding] = &BindingValidator{}

// ValidateCreate checks the target; the CRD keeps it immutable afterwards.
func (v *BindingValidator) ValidateCreate(ctx context.Context, b *v1alpha1.ServiceBinding) (admission.Warnings, error) {
	inst, err := getOptional(ctx, v.Client, binding.InstanceKey(b), &v1alpha1.ServiceInstance{})
	if err != nil || inst == nil || !binding.Allowed(inst, b.Namespace) {
		return nil, err
	}
	users, ok := v.Engines[inst.Spec.Engine].(engine.UserManager)
	if !ok {
		return nil, nil
	}
	if err := users.CheckTarget(b); err != nil {
		path := field.NewPath("spec", users.Target())
		return nil, forbidden(b, path, strings.TrimPrefix(err.Error(), path.String()+": "))
	}
	if refusal := binding.CheckGrant(inst, b, users); refusal != nil {
		return nil, forbidden(b, field.NewPath("spec", refusal.Field), refusal.Message)
	}
	return nil, nil
}

func forbidden(b *v1alpha1.ServiceBinding, path *field.Path, msg string) error {
	return invalid("ServiceBinding", b.Name, field.ErrorList{field.Forbidden(path, msg)})
}

// ValidateUpdate admits every update: the target cannot change (CEL), and a binding admitted
// before its target was reserved must still take its finalizer's removal and status.
func (v *BindingValidator) ValidateUpdate(context.Context, *v1alpha1.ServiceBinding, *v1alpha1.ServiceBinding) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete admits every deletion.
func (v *BindingValidator) ValidateDelete(context.Context, *v1alpha1.ServiceBinding) (admission.Warnings, error) {
	return nil, nil
}
