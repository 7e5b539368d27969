package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/schedule"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=serviceinstances,verbs=delete

// drillInstance is the plan's scratch instance: one at a time.
func drillInstance(p *v1alpha1.BackupPlan) string {
	return names.Child(p.Name, "drill", names.MaxDNSLabel)
}

// drill runs the plan's verification drills: on each slot it restores the latest completed backup
// into the scratch instance (the restore checks what it applied against the dump's own record),
// or, for a physical plan of an archiving instance, restores it to a time between two markers
// (drill_point_in_time.go); then it records the outcome and deletes the scratch instance and the
// Restore. It returns when to look again while a drill runs.
func (r *PlanReconciler) drill(ctx context.Context, p *v1alpha1.BackupPlan, backups []v1alpha1.Backup, now time.Time) (time.Duration, error) {
	if d := p.Status.LastDrill; d != nil && d.Result == DrillRunning {
		return r.followDrill(ctx, p, now)
	}
	s, err := schedule.Parse(p.Spec.Drill.Schedule, p.Spec.TimeZone, now)
	if err != nil {
		setReady(&p.Status.Conditions, p.Generation, false, ReasonInvalidSchedule, "drill: "+err.Error())
		return 0, nil
	}
	last := p.CreationTimestamp.Time
	if p.Status.LastDrillScheduleTime != nil {
		last = p.Status.LastDrillScheduleTime.Time
	}
	slot, next := s.Due(last, now)
	if slot.IsZero() || p.Status.LastSuccessfulBackup == "" {
		return next.Sub(now) + time.Second, nil
	}
	restore := names.Child(p.Name, "drill-"+slot.UTC().Format("20060102-1504"), names.MaxDNSLabel)
	// A scratch instance left by an interrupted drill, or still being deleted, goes first: the
	// Restore would refuse an existing target. One this slot's Restore made is this drill's
	// (the status that said so may not have been written).
	if gone, err := r.deleteScratch(ctx, p, restore); err != nil || !gone {
		return 10 * time.Second, err
	}
	t := metav1.NewTime(slot)
	d := &v1alpha1.DrillStatus{Backup: p.Status.LastSuccessfulBackup, Restore: restore, StartTime: &t, Result: DrillRunning}
	pit, err := r.pointInTime(ctx, p)
	if err != nil {
		return 0, err
	}
	if pit != nil {
		// The Restore is made once the second marker is written (followPointInTime).
		after, err := r.markBefore(ctx, pit, d, slot, now)
		if err != nil {
			return 0, err // the slot stays due: asked again with the controller's backoff
		}
		p.Status.LastDrillScheduleTime, p.Status.LastDrill = &t, d
		if d.Result != DrillRunning {
			return 0, r.finishDrill(ctx, p, now)
		}
		return after, nil
	}
	p.Status.LastDrillScheduleTime = &t
	if err := r.createDrillRestore(ctx, p, d); err != nil {
		return 0, err
	}
	p.Status.LastDrill = d
	return 15 * time.Second, nil
}

// createDrillRestore makes the drill's Restore into the scratch instance (to the drill's target,
// if it has one).
func (r *PlanReconciler) createDrillRestore(ctx context.Context, p *v1alpha1.BackupPlan, d *v1alpha1.DrillStatus) error {
	rs := &v1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: d.Restore,
			Namespace: p.Namespace, Labels: map[string]string{DrillLabel: p.Name}},
		Spec: v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: d.Backup},
			Target: v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: drillInstance(p)}}, TargetTime: d.TargetTime},
	}
	if err := r.Client.Create(ctx, rs); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func (r *PlanReconciler) followDrill(ctx context.Context, p *v1alpha1.BackupPlan, now time.Time) (time.Duration, error) {
	d := p.Status.LastDrill
	if d.TargetTime != nil {
		if again, err := r.followPointInTime(ctx, p, now); err != nil || again > 0 {
			return again, err
		}
		return 0, r.finishDrill(ctx, p, now)
	}
	rs := &v1alpha1.Restore{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: d.Restore}, rs)
	switch {
	case apierrors.IsNotFound(err):
		d.Result, d.Message = DrillFailed, "the drill's Restore was deleted before it finished"
	case err != nil:
		return 0, err
	case rs.Status.Phase == v1alpha1.BackupCompleted:
		d.Result, d.Message = DrillPassed, conditionMessage(rs.Status.Conditions)
	case rs.Status.Phase == v1alpha1.BackupFailed:
		d.Result, d.Message = DrillFailed, conditionMessage(rs.Status.Conditions)
	default:
		return 15 * time.Second, nil
	}
	return 0, r.finishDrill(ctx, p, now)
}

// finishDrill records the end of the drill whose result is set, tells of it, and deletes the
// scratch instance and the Restore.
func (r *PlanReconciler) finishDrill(ctx context.Context, p *v1alpha1.BackupPlan, now time.Time) error {
	d := p.Status.LastDrill
	t := metav1.NewTime(now.Truncate(time.Second))
	d.CompletionTime = &t
	if r.Recorder != nil {
		kind := "Normal"
		if d.Result == DrillFailed {
			kind = "Warning"
		}
		r.Recorder.Eventf(p, nil, kind, "Drill"+d.Result, "Drill", "restoring backup %s: %s", d.Backup, d.Message)
	}
	if _, err := r.deleteScratch(ctx, p, ""); err != nil {
		return err
	}
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: d.Restore}}
	return client.IgnoreNotFound(r.Client.Delete(ctx, rs))
}

// deleteScratch deletes the plan's scratch instance, only if a drill made it and not the Restore
// named keep, and reports whether it is gone (or kept).
func (r *PlanReconciler) deleteScratch(ctx context.Context, p *v1alpha1.BackupPlan, keep string) (bool, error) {
	inst := &v1alpha1.ServiceInstance{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: drillInstance(p)}, inst)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if inst.Labels[DrillLabel] != p.Name {
		setReady(&p.Status.Conditions, p.Generation, false, "DrillInstanceTaken",
			"instance "+inst.Name+" exists and is not this plan's scratch instance: drills cannot run until it is renamed or deleted")
		return false, nil
	}
	if keep != "" && inst.Annotations[RestoredByAnnotation] == keep && inst.DeletionTimestamp.IsZero() {
		return true, nil
	}
	if inst.DeletionTimestamp.IsZero() {
		return false, client.IgnoreNotFound(r.Client.Delete(ctx, inst, client.Preconditions{UID: &inst.UID}))
	}
	return false, nil
}
