package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// A point-in-time drill (a plan of physical backups of an instance that archives continuously, of
// an engine.MarkerWriter) proves what a point-in-time restore reaches, not only that one works:
// it writes a marker on the instance just before a target time and one just after it, restores
// the plan's newest backup to the target into the scratch instance, and passes only if that
// instance holds the first marker and not the second. It measures the recovery point (how long
// after the target the instance's archive was seen to hold it) and the recovery time (the scratch
// recovery's start, its instance made, to the instance's readiness).

// markerPatience bounds how long a drill keeps asking for a marker to be written or checked
// (an agent restarting, a primary switching over) before it fails, saying why.
const markerPatience = 5 * time.Minute

// markerLead is how far ahead of the first marker the target is: a whole second (a Restore's
// targetTime has no finer one) at least a second away, so that the marker commits before it.
const markerLead = 2 * time.Second

// drillMarkers are the names of a drill's markers, unique to its Restore.
func drillMarkers(restore string) (before, after string) {
	return restore + "-before", restore + "-after"
}

// pointInTime returns the plan's instance when its drills restore to a point in time, and nil
// when they restore the newest backup whole.
func (r *PlanReconciler) pointInTime(ctx context.Context, p *v1alpha1.BackupPlan) (*v1alpha1.ServiceInstance, error) {
	if p.Spec.Method != v1alpha1.BackupPhysical {
		return nil, nil
	}
	inst := &v1alpha1.ServiceInstance{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Spec.InstanceRef.Name}, inst); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if _, ok := r.Engines[inst.Spec.Engine].(engine.MarkerWriter); !ok || inst.Continuous() == nil || !inst.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return inst, nil
}

// markers returns the engine's MarkerWriter and what it needs to reach the instance's agents.
func (r *PlanReconciler) markers(ctx context.Context, inst *v1alpha1.ServiceInstance, now time.Time) (engine.MarkerWriter, engine.MarkerInput, error) {
	mw, ok := r.Engines[inst.Spec.Engine].(engine.MarkerWriter)
	if !ok {
		return nil, engine.MarkerInput{}, fmt.Errorf("the %s engine writes no drill markers", inst.Spec.Engine)
	}
	agents, err := certs.AgentDialer(ctx, r.Client, inst.Namespace, inst.Name, now)
	return mw, engine.MarkerInput{Instance: inst, Client: r.Client, Agents: agents}, err
}

// markBefore writes the drill's first marker on the source and sets the target just after it. An
// error leaves the slot due (asked again) until markerPatience has passed since the slot, when
// the drill fails. It returns when to write the second marker.
func (r *PlanReconciler) markBefore(ctx context.Context, source *v1alpha1.ServiceInstance, d *v1alpha1.DrillStatus, slot, now time.Time) (time.Duration, error) {
	target := now.Truncate(time.Second).Add(markerLead)
	before, _ := drillMarkers(d.Restore)
	mw, in, err := r.markers(ctx, source, now)
	if err == nil {
		err = mw.WriteMarker(ctx, in, before, target, time.Time{})
	}
	if err != nil {
		if now.Sub(slot) < markerPatience {
			return 0, fmt.Errorf("drill: writing the marker before its target on instance %s: %w", source.Name, err)
		}
		d.Result, d.Message = DrillFailed, fmt.Sprintf("the marker before the target could not be written on instance %s: %v", source.Name, err)
		return 0, nil
	}
	d.TargetTime = &metav1.Time{Time: target}
	return target.Sub(now) + 500*time.Millisecond, nil
}

// followPointInTime carries a point-in-time drill on: the second marker and the Restore, the
// recovery point while the archive catches up, the markers once the restore completed. It
// returns when to look again, or 0 once the drill's result is set.
func (r *PlanReconciler) followPointInTime(ctx context.Context, p *v1alpha1.BackupPlan, now time.Time) (time.Duration, error) {
	d := p.Status.LastDrill
	target := d.TargetTime.Time
	before, after := drillMarkers(d.Restore)
	source, err := r.pointInTime(ctx, p)
	if err != nil {
		return 0, err
	}
	rs := &v1alpha1.Restore{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: d.Restore}, rs)
	if apierrors.IsNotFound(err) {
		return r.markAfter(ctx, p, source, now)
	}
	if err != nil {
		return 0, err
	}
	if w := windowOf(source); d.RecoveryPoint == nil && w != nil && !w.To.Time.Before(target) {
		// When the archive was first known to hold the target: not the window's end, a moment
		// the agent happened to sample, which may be long before the archive held it.
		d.RecoveryPoint = &metav1.Duration{Duration: now.Sub(target).Truncate(time.Second)}
	}
	switch rs.Status.Phase {
	case v1alpha1.BackupFailed:
		d.Result, d.Message = DrillFailed, conditionMessage(rs.Status.Conditions)
		return 0, nil
	case v1alpha1.BackupCompleted:
	default:
		return 5 * time.Second, nil // the recovery point is read from the source's window meanwhile
	}
	scratch := &v1alpha1.ServiceInstance{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: drillInstance(p)}, scratch)
	if err == nil {
		var mw engine.MarkerWriter
		var in engine.MarkerInput
		if mw, in, err = r.markers(ctx, scratch, now); err == nil {
			err = mw.CheckMarkers(ctx, in, []string{before}, []string{after})
		}
	}
	if err != nil {
		if done := rs.Status.CompletionTime; done == nil || now.Sub(done.Time) < markerPatience {
			log.FromContext(ctx).Info("drill: the restored instance's markers cannot be checked yet", "instance", drillInstance(p), "reason", err.Error())
			return 5 * time.Second, nil
		}
		d.Result, d.Message = DrillFailed, fmt.Sprintf("restored to %s, but the markers say otherwise: %v", target.UTC().Format(time.RFC3339), err)
		return 0, nil
	}
	if start, done := rs.Status.StartTime, rs.Status.CompletionTime; start != nil && done != nil {
		d.RecoveryTime = &metav1.Duration{Duration: done.Sub(start.Time)}
	}
	d.Result, d.Message = DrillPassed, fmt.Sprintf("restored to %s: marker %s (written just before) present, %s (just after) absent; recovery point %s, recovery time %s",
		target.UTC().Format(time.RFC3339), before, after, durationOrUnseen(d.RecoveryPoint), durationOrUnseen(d.RecoveryTime))
	if m := conditionMessage(rs.Status.Conditions); m != "" {
		d.Message += "; " + m
	}
	return 0, nil
}

// markAfter writes the drill's second marker once the source's clock has passed the target, then
// makes the Restore to the target. It keeps asking for markerPatience after the target.
//
// The second marker goes only on a source that still holds the first: one restored in place
// between the two (or whose failover lost its last commits) no longer has the history the drill
// aimed at, and a drill restoring the archive to it would pass while the source lacks what the
// drill says was there. Such a drill aims again from now, on the source's present history.
func (r *PlanReconciler) markAfter(ctx context.Context, p *v1alpha1.BackupPlan, source *v1alpha1.ServiceInstance, now time.Time) (time.Duration, error) {
	d := p.Status.LastDrill
	target := d.TargetTime.Time
	before, after := drillMarkers(d.Restore)
	err := fmt.Errorf("instance %s no longer archives continuously", p.Spec.InstanceRef.Name)
	if source != nil {
		var mw engine.MarkerWriter
		var in engine.MarkerInput
		if mw, in, err = r.markers(ctx, source, now); err == nil {
			if lost := mw.CheckMarkers(ctx, in, []string{before}, nil); lost != nil {
				// Also when the source cannot be asked: aiming again costs a later target only,
				// as the second marker is not written yet.
				if r.Recorder != nil {
					r.Recorder.Eventf(p, nil, "Normal", "DrillAimedAgain", "Drill",
						"instance %s does not show the marker written before %s (restored in place meanwhile?): the drill aims again from now: %v",
						source.Name, target.UTC().Format(time.RFC3339), lost)
				}
				return r.markBefore(ctx, source, d, d.StartTime.Time, now)
			}
			err = mw.WriteMarker(ctx, in, after, time.Time{}, target)
		}
	}
	if err != nil {
		if now.Sub(target) < markerPatience {
			log.FromContext(ctx).Info("drill: the marker after the target is not written yet", "instance", p.Spec.InstanceRef.Name, "reason", err.Error())
			return time.Second, nil
		}
		d.Result, d.Message = DrillFailed, fmt.Sprintf("the marker after the target could not be written: %v", err)
		return 0, nil
	}
	return 5 * time.Second, r.createDrillRestore(ctx, p, d)
}

func windowOf(inst *v1alpha1.ServiceInstance) *v1alpha1.RecoverableWindow {
	if inst == nil {
		return nil
	}
	return inst.Status.RecoverableWindow
}

func durationOrUnseen(d *metav1.Duration) string {
	if d == nil {
		return "not observed"
	}
	return d.Duration.String()
}
