package webhook

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/schedule"
)

// PlanValidator refuses a BackupPlan whose schedule or drill schedule never fires (`0 0 30 2 *`)
// or whose time zone is unknown: CEL can count a cron expression's fields, not tell whether a date
// exists. The plan controller refuses the same (InvalidSchedule), for plans admitted without it.
type PlanValidator struct {
	Clock clock.PassiveClock
}

var _ admission.Validator[*v1alpha1.BackupPlan] = &PlanValidator{}

var (
	schedulePath      = field.NewPath("spec", "schedule")
	timeZonePath      = field.NewPath("spec", "timeZone")
	drillSchedulePath = field.NewPath("spec", "drill", "schedule")
)

// ValidateCreate checks the schedules and the time zone.
func (v *PlanValidator) ValidateCreate(_ context.Context, p *v1alpha1.BackupPlan) (admission.Warnings, error) {
	return nil, invalid("BackupPlan", p.Name, v.check(p))
}

// ValidateUpdate checks them when they change: a plan admitted before keeps taking other updates.
func (v *PlanValidator) ValidateUpdate(_ context.Context, old, p *v1alpha1.BackupPlan) (admission.Warnings, error) {
	if p.DeletionTimestamp != nil || old.Spec.Schedule == p.Spec.Schedule && old.Spec.TimeZone == p.Spec.TimeZone &&
		drillSchedule(old) == drillSchedule(p) {
		return nil, nil
	}
	return nil, invalid("BackupPlan", p.Name, v.check(p))
}

// ValidateDelete allows every deletion.
func (v *PlanValidator) ValidateDelete(context.Context, *v1alpha1.BackupPlan) (admission.Warnings, error) {
	return nil, nil
}

func (v *PlanValidator) check(p *v1alpha1.BackupPlan) field.ErrorList {
	var errs field.ErrorList
	zone := p.Spec.TimeZone
	if _, err := time.LoadLocation(zone); err != nil {
		errs = append(errs, field.Invalid(timeZonePath, zone, "not an IANA time zone name (such as Europe/Paris)"))
		zone = "" // the schedules are still checked, in UTC
	}
	now := v.Clock.Now()
	if _, err := schedule.Parse(p.Spec.Schedule, zone, now); err != nil {
		errs = append(errs, field.Invalid(schedulePath, p.Spec.Schedule, err.Error()))
	}
	if p.Spec.Drill != nil {
		if _, err := schedule.Parse(p.Spec.Drill.Schedule, zone, now); err != nil {
			errs = append(errs, field.Invalid(drillSchedulePath, p.Spec.Drill.Schedule, err.Error()))
		}
	}
	return errs
}

func drillSchedule(p *v1alpha1.BackupPlan) string {
	if p.Spec.Drill == nil {
		return ""
	}
	return p.Spec.Drill.Schedule
}
