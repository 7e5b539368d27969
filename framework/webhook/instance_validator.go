package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/maintenance"
	"github.com/datafleet-dev/datafleet/framework/plan"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// InstanceValidator checks a ServiceInstance against the objects CEL cannot see: its engine's
// VersionCatalog (support windows, upgrade paths) and its ServicePlan (limits, transitions).
// Only what a change touches is checked, so an instance whose version has since passed its sundown
// still takes every other update (a finalizer, a label, a size).
//
// Client reads from the API server, not from a cache: a cached catalog that is one watch event
// behind is not missing (liveOnMiss would catch that) but wrong, and would admit a version the
// platform team has just sundowned or refuse one it has just added. Only a create, a version, a
// parameter or a plan change reads them (the operator's own writes to an instance do not), so the
// cost is one GET per tenant action.
type InstanceValidator struct {
	Client client.Reader
	Clock  clock.PassiveClock
	// Engines this manager runs: their Validate (parameters, topology) runs at admission too, so a
	// bad parameter is refused by the API server instead of showing up later in a condition.
	Engines map[string]engine.Engine
}

var _ admission.Validator[*v1alpha1.ServiceInstance] = &InstanceValidator{}

var (
	versionPath = field.NewPath("spec", "version")
	enginePath  = field.NewPath("spec", "engine")
	planPath    = field.NewPath("spec", "plan")
)

// ValidateCreate refuses a version outside its support window and a plan that does not fit.
func (v *InstanceValidator) ValidateCreate(ctx context.Context, inst *v1alpha1.ServiceInstance) (admission.Warnings, error) {
	errs, err := v.withCatalog(ctx, inst, func(cat *v1alpha1.VersionCatalog) field.ErrorList {
		rel, err := catalog.CheckNew(cat, inst.Spec.Version, v.Clock.Now())
		if err != nil {
			return field.ErrorList{versionError(inst.Spec.Version, err)}
		}
		return v.engineErrors(inst, rel)
	})
	if err != nil {
		return nil, err
	}
	planErrs, err := v.checkPlan(ctx, inst)
	if err != nil {
		return nil, err
	}
	errs = append(errs, planErrs...)
	if errs, err = v.checkPriorityClass(ctx, nil, inst, errs); err != nil {
		return nil, err
	}
	return nil, invalid("ServiceInstance", inst.Name, errs)
}

// withCatalog runs check with the instance's engine's catalog, or refuses an engine without one.
func (v *InstanceValidator) withCatalog(ctx context.Context, inst *v1alpha1.ServiceInstance,
	check func(*v1alpha1.VersionCatalog) field.ErrorList) (field.ErrorList, error) {
	cat, err := v.catalog(ctx, inst.Spec.Engine)
	switch {
	case err != nil:
		return nil, err
	case cat == nil:
		return field.ErrorList{noCatalog(inst.Spec.Engine)}, nil
	}
	return check(cat), nil
}

// engineErrors runs the engine's own checks, when this manager runs the engine.
func (v *InstanceValidator) engineErrors(inst *v1alpha1.ServiceInstance, rel catalog.Release) field.ErrorList {
	e, ok := v.Engines[inst.Spec.Engine]
	if !ok {
		return maintenance.Validate(inst.Spec.MaintenanceWindow, field.NewPath("spec", "maintenanceWindow"))
	}
	return engine.ValidateSpec(e, inst, rel)
}

// ValidateUpdate refuses a version change the catalog has no in-place path for, a plan change the
// old plan does not allow, and sizes outside the plan's limits.
func (v *InstanceValidator) ValidateUpdate(ctx context.Context, old, inst *v1alpha1.ServiceInstance) (admission.Warnings, error) {
	if inst.DeletionTimestamp != nil {
		// Nothing may stand in the way of a deletion finishing (finalizers being removed).
		return nil, nil
	}
	var errs field.ErrorList
	if inst.Spec.Version != old.Spec.Version {
		var err error
		errs, err = v.withCatalog(ctx, inst, func(cat *v1alpha1.VersionCatalog) field.ErrorList {
			if err := checkVersionChange(cat, old, inst, v.Clock.Now()); err != nil {
				return field.ErrorList{versionError(inst.Spec.Version, err)}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if inst.Spec.Plan != old.Spec.Plan && old.Spec.Plan != "" {
		from, err := v.plan(ctx, old.Spec.Plan)
		if err != nil {
			return nil, err
		}
		if e := plan.CheckTransition(from, old.Spec.Plan, inst.Spec.Plan); e != nil {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 && (!apiequality.Semantic.DeepEqual(old.Spec.Parameters, inst.Spec.Parameters) || !apiequality.Semantic.DeepEqual(old.Spec.TLS, inst.Spec.TLS)) {
		// Only what changed: an instance admitted under older engine rules still takes other updates.
		cat, err := v.catalog(ctx, inst.Spec.Engine)
		if err != nil {
			return nil, err
		}
		if cat != nil {
			if rel, err := catalog.Resolve(cat, cmp.Or(inst.Spec.Version, old.Status.Version)); err == nil {
				// (An empty spec.version means the version the instance runs: see resolveVersion.)
				errs = append(errs, v.engineErrors(inst, rel)...)
			}
		}
	}
	if e := checkTLSRequired(old, inst); e != nil {
		errs = append(errs, e)
	}
	if inst.Spec.Plan != old.Spec.Plan || !sameSizes(old, inst) {
		planErrs, err := v.checkPlan(ctx, inst)
		if err != nil {
			return nil, err
		}
		errs = append(errs, planErrs...)
	}
	errs, err := v.checkPriorityClass(ctx, old, inst, errs)
	if err != nil {
		return nil, err
	}
	return nil, invalid("ServiceInstance", inst.Name, errs)
}

// checkPriorityClass adds to errs that the instance's PriorityClass does not exist, when it is new
// (old is nil on a create) or changed: an instance whose class was deleted since still takes
// other updates, and says so in its Ready condition.
func (v *InstanceValidator) checkPriorityClass(ctx context.Context, old, inst *v1alpha1.ServiceInstance, errs field.ErrorList) (field.ErrorList, error) {
	if old != nil && old.PriorityClassName() == inst.PriorityClassName() {
		return errs, nil
	}
	e, err := workload.MissingPriorityClass(ctx, v.Client, inst)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if e != nil {
		errs = append(errs, e)
	}
	return errs, nil
}

// checkTLSRequired refuses tls.required on an existing instance that does not serve TLS on every
// pod yet: its replicas would restart verifying a certificate the primary does not serve, and the
// roll would wait for them forever.
func checkTLSRequired(old, inst *v1alpha1.ServiceInstance) *field.Error {
	required := func(si *v1alpha1.ServiceInstance) bool { return si.Spec.TLS != nil && si.Spec.TLS.Required }
	if !required(inst) || required(old) {
		return nil
	}
	served := old.Spec.TLS != nil && old.Spec.TLS.Enabled && old.Status.TLS != nil &&
		old.Status.Phase == v1alpha1.PhaseReady && old.Status.ObservedGeneration == old.Generation
	if served {
		return nil
	}
	return field.Forbidden(field.NewPath("spec", "tls", "required"), "turn on spec.tls.enabled first and set required once the "+
		"instance is Ready with it: replicas then verify the primary's certificate, which every pod must already serve")
}

// ValidateDelete allows every deletion: deletionProtection is the instance's own guard.
func (v *InstanceValidator) ValidateDelete(context.Context, *v1alpha1.ServiceInstance) (admission.Warnings, error) {
	return nil, nil
}

// checkVersionChange compares the requested version with the one the instance runs (status), or,
// before it ever ran one, treats the instance as new.
func checkVersionChange(cat *v1alpha1.VersionCatalog, old, inst *v1alpha1.ServiceInstance, now time.Time) error {
	from := old.Status.Version
	if from == "" {
		_, err := catalog.CheckNew(cat, inst.Spec.Version, now)
		return err
	}
	_, err := catalog.CheckChange(cat, from, inst.Spec.Version, now)
	return err
}

func (v *InstanceValidator) checkPlan(ctx context.Context, inst *v1alpha1.ServiceInstance) (field.ErrorList, error) {
	if inst.Spec.Plan == "" {
		return nil, nil
	}
	p, err := v.plan(ctx, inst.Spec.Plan)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return field.ErrorList{field.NotFound(planPath, inst.Spec.Plan)}, nil
	case p.Spec.Engine != inst.Spec.Engine:
		return field.ErrorList{field.Invalid(planPath, inst.Spec.Plan,
			fmt.Sprintf("ServicePlan %s is for %s instances, not %s", p.Name, p.Spec.Engine, inst.Spec.Engine))}, nil
	}
	return plan.Check(&inst.Spec, p), nil
}

func sameSizes(a, b *v1alpha1.ServiceInstance) bool {
	return apiequality.Semantic.DeepEqual(a.Spec.Replicas, b.Spec.Replicas) &&
		apiequality.Semantic.DeepEqual(a.Spec.Storage, b.Spec.Storage) &&
		apiequality.Semantic.DeepEqual(a.Spec.Resources, b.Spec.Resources)
}

// catalog reads the engine's VersionCatalog; nil when there is none.
func (v *InstanceValidator) catalog(ctx context.Context, engine string) (*v1alpha1.VersionCatalog, error) {
	return getOptional(ctx, v.Client, client.ObjectKey{Name: engine}, &v1alpha1.VersionCatalog{})
}

// plan reads a ServicePlan; nil when there is none.
func (v *InstanceValidator) plan(ctx context.Context, name string) (*v1alpha1.ServicePlan, error) {
	return getOptional(ctx, v.Client, client.ObjectKey{Name: name}, &v1alpha1.ServicePlan{})
}

// getOptional reads an object into obj; nil when it does not exist. Other errors answer the
// admission request with an internal error (the API server then applies the failurePolicy).
func getOptional[T client.Object](ctx context.Context, c client.Reader, key client.ObjectKey, obj T) (T, error) {
	var none T
	// A name no object can have (the client would refuse to send it) names nothing.
	if len(path.IsValidPathSegmentName(key.Name)) > 0 || len(path.IsValidPathSegmentName(key.Namespace)) > 0 {
		return none, nil
	}
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return none, nil
		}
		return none, apierrors.NewInternalError(fmt.Errorf("reading %T %s: %w", obj, key, err))
	}
	return obj, nil
}

func noCatalog(engine string) *field.Error {
	return field.Invalid(enginePath, engine, fmt.Sprintf(
		"no VersionCatalog named %q exists: the platform team must create one listing the %s versions offered", engine, engine))
}

func versionError(requested string, err error) *field.Error {
	var re *catalog.ResolveError
	if errors.As(err, &re) {
		return field.Invalid(versionPath, requested, re.Message)
	}
	return field.InternalError(versionPath, err)
}

// invalid is the API server's Invalid error for the kind's object, nil without errors.
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}
