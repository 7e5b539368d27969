// Package plan applies a ServicePlan to the instances that reference it: the plan's sizes fill
// what an instance leaves unset, the plan's limits bound what it sets itself, and the plan's
// allowedTransitions decide which plan it may move to. Pure functions: the webhook and the
// reconciler both call them.
package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// Reasons an instance's plan is refused, used as condition reasons by the reconciler.
const (
	ReasonNotFound      = "PlanNotFound"
	ReasonWrongEngine   = "PlanForAnotherEngine"
	ReasonOutsideLimits = "OutsidePlanLimits"
)

// Apply fills in the instance's replicas, storage size and resources that its spec leaves unset
// from the plan. It changes spec in memory only: the reconciler renders from the result and never
// writes it back.
func Apply(spec *v1alpha1.ServiceInstanceSpec, p *v1alpha1.ServicePlan) {
	if spec.Replicas == nil && p.Spec.Replicas != nil {
		spec.Replicas = ptr.To(*p.Spec.Replicas)
	}
	if spec.Storage == nil && p.Spec.StorageSize != nil {
		spec.Storage = &v1alpha1.StorageSpec{Size: p.Spec.StorageSize.DeepCopy()}
	}
	spec.Resources.Requests = merged(spec.Resources.Requests, p.Spec.Resources.Requests)
	spec.Resources.Limits = merged(spec.Resources.Limits, p.Spec.Resources.Limits)
}

func merged(own, plan corev1.ResourceList) corev1.ResourceList {
	if len(plan) == 0 {
		return own
	}
	out := plan.DeepCopy()
	for k, v := range own {
		out[k] = v.DeepCopy()
	}
	return out
}

// Check refuses what the instance sets for itself beyond the plan's limits. A field the plan sets
// no limit for may not exceed the plan's own value (when it has one).
func Check(spec *v1alpha1.ServiceInstanceSpec, p *v1alpha1.ServicePlan) field.ErrorList {
	var errs field.ErrorList
	lim := p.Spec.Limits
	if lim == nil {
		lim = &v1alpha1.PlanLimits{}
	}
	specPath := field.NewPath("spec")
	if spec.Replicas != nil {
		lo, hi := lim.MinReplicas, lim.MaxReplicas
		if hi == nil {
			hi = p.Spec.Replicas
		}
		r := *spec.Replicas
		if lo != nil && r < *lo || hi != nil && r > *hi {
			errs = append(errs, field.Invalid(specPath.Child("replicas"), r,
				fmt.Sprintf("plan %s allows %s replicas", p.Name, replicaRange(lo, hi))))
		}
	}
	if spec.Storage != nil {
		max := lim.MaxStorageSize
		if max == nil {
			max = p.Spec.StorageSize
		}
		if max != nil && spec.Storage.Size.Cmp(*max) > 0 {
			errs = append(errs, field.Invalid(specPath.Child("storage", "size"), spec.Storage.Size.String(),
				fmt.Sprintf("plan %s allows at most %s per replica", p.Name, max.String())))
		}
	}
	res := specPath.Child("resources")
	errs = append(errs, checkResources(res.Child("requests"), spec.Resources.Requests, lim.MaxResources, p.Spec.Resources.Requests, p.Name)...)
	errs = append(errs, checkResources(res.Child("limits"), spec.Resources.Limits, lim.MaxResources, p.Spec.Resources.Limits, p.Name)...)
	return errs
}

func checkResources(path *field.Path, own, max, planOwn corev1.ResourceList, plan string) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(own)) {
		q := own[name]
		ceiling, ok := max[name]
		if !ok {
			ceiling, ok = planOwn[name]
		}
		if ok && q.Cmp(ceiling) > 0 {
			errs = append(errs, field.Invalid(path.Key(string(name)), q.String(),
				fmt.Sprintf("plan %s allows at most %s", plan, ceiling.String())))
		}
	}
	return errs
}

func replicaRange(lo, hi *int32) string {
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("%d to %d", *lo, *hi)
	case hi != nil:
		return fmt.Sprintf("at most %d", *hi)
	default:
		return fmt.Sprintf("at least %d", *lo)
	}
}

// CheckTransition refuses moving an instance from plan from (nil when it no longer exists) to
// plan to unless from lists it among its allowedTransitions.
func CheckTransition(from *v1alpha1.ServicePlan, fromName, to string) *field.Error {
	path := field.NewPath("spec", "plan")
	switch {
	case fromName == to || fromName == "" || from == nil:
		// Taking a first plan is always allowed; a deleted plan cannot forbid anything.
		return nil
	case to == "":
		return field.Forbidden(path, fmt.Sprintf("an instance cannot leave its plan %s; it may move to: %s",
			fromName, listOrNone(from.Spec.AllowedTransitions)))
	case !slices.Contains(from.Spec.AllowedTransitions, to):
		return field.Forbidden(path, fmt.Sprintf("plan %s does not allow moving to %s; it may move to: %s",
			fromName, to, listOrNone(from.Spec.AllowedTransitions)))
	}
	return nil
}

func listOrNone(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(slices.Values(v)), ", ")
}
