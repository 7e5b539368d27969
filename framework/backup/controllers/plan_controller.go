package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/backup/schedule"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=backupplans,verbs=get;list;watch
// +kubebuilder:rbac:groups=datafleet.dev,resources=backupplans/status,verbs=get;update;patch

// Plan reasons.
const (
	ReasonScheduled       = "Scheduled"
	ReasonSuspended       = "Suspended"
	ReasonInvalidSchedule = "InvalidSchedule"
)

// Drill results.
const (
	DrillRunning = "Running"
	DrillPassed  = "Passed"
	DrillFailed  = "Failed"
)

// PlanReconciler creates a plan's Backups on its schedule, prunes them by its retention, and runs
// its verification drills.
type PlanReconciler struct {
	Client client.Client
	// APIReader reads the plan from the API server while a drill runs (see Reconcile); nil reads
	// only the cache.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Engines write and check a point-in-time drill's markers (engine.MarkerWriter).
	Engines map[string]engine.Engine
	// Clock decides which slots are due and which Backups are past their age; nil is the wall
	// clock.
	Clock clock.PassiveClock

	// own remembers what this reconciler's last writes to each object replaced.
	own apply.OwnWrites
}

// backupName is a plan's Backup for one slot: deterministic, so a restart never makes two.
func backupName(plan string, slot time.Time) string {
	return names.Child(plan, slot.UTC().Format("20060102-1504"), names.MaxDNSLabel)
}

// Reconcile implements reconcile.Reconciler.
func (r *PlanReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &v1alpha1.BackupPlan{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.own.Stale(req.NamespacedName, p.ResourceVersion) {
		return apply.StaleRead()
	}
	if d := p.Status.LastDrill; d != nil && d.Result == DrillRunning && r.APIReader != nil {
		// A drill's end is written after its Restore and scratch instance are deleted, and those
		// deletions run this again at once: the cache may not hold the end yet, and a drill it
		// still believed running would make its Restore again (a point-in-time drill does, once
		// its second marker is written), leaving a scratch instance nobody deletes. While a drill
		// runs, the plan is read from the API server.
		if err := r.APIReader.Get(ctx, req.NamespacedName, p); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its Backups stay: they are the data
	}
	now := now(r.Clock)
	before := p.DeepCopy()
	p.Status.ObservedGeneration = p.Generation
	list := &v1alpha1.BackupList{}
	if err := r.Client.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels{PlanLabel: p.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var requeue time.Duration
	err := r.reconcile(ctx, p, list.Items, now, &requeue)
	if werr := writeStatus(ctx, r.Client, &r.own, before.ResourceVersion, before, p, statusChanged(before.Status, p.Status)); werr != nil {
		return apply.QuietConflict(ctrl.Result{}, werr)
	}
	return apply.QuietConflict(ctrl.Result{RequeueAfter: requeue}, err)
}

func (r *PlanReconciler) reconcile(ctx context.Context, p *v1alpha1.BackupPlan, backups []v1alpha1.Backup, now time.Time, requeue *time.Duration) error {
	expiry, err := r.prune(ctx, p, backups, now)
	if err != nil {
		return err
	}
	var newest *v1alpha1.Backup
	for i := range backups {
		if b := &backups[i]; b.Status.Phase == v1alpha1.BackupCompleted && b.DeletionTimestamp.IsZero() && (newest == nil || newer(b, newest)) {
			newest = b
		}
	}
	p.Status.LastSuccessfulBackup = ""
	if newest != nil {
		p.Status.LastSuccessfulBackup = newest.Name
	}
	s, err := schedule.Parse(p.Spec.Schedule, p.Spec.TimeZone, now)
	if err != nil {
		setReady(&p.Status.Conditions, p.Generation, false, ReasonInvalidSchedule, err.Error())
		return nil
	}
	last := p.CreationTimestamp.Time
	if p.Status.LastScheduleTime != nil {
		last = p.Status.LastScheduleTime.Time
	}
	slot, next := s.Due(last, now)
	*requeue = next.Sub(now) + time.Second
	if expiry > 0 && expiry+time.Second < *requeue {
		*requeue = expiry + time.Second
	}
	if p.Spec.Suspend {
		setReady(&p.Status.Conditions, p.Generation, true, ReasonSuspended, "suspended: no backups are scheduled; retention still prunes")
	} else {
		setReady(&p.Status.Conditions, p.Generation, true, ReasonScheduled, fmt.Sprintf("backups on %q (%s)", p.Spec.Schedule, zoneName(p)))
		if !slot.IsZero() {
			if err := r.schedule(ctx, p, backups, slot, next); err != nil {
				return err
			}
		}
	}
	// A drill under way is followed to its end even when the plan's drill was removed meanwhile:
	// otherwise its scratch instance and Restore would be left behind, restoring for nobody.
	if running := p.Status.LastDrill != nil && p.Status.LastDrill.Result == DrillRunning; p.Spec.Drill != nil || running {
		d, err := r.drill(ctx, p, backups, now)
		if err != nil {
			return err
		}
		if d > 0 && d < *requeue {
			*requeue = d
		}
	}
	return nil
}

func zoneName(p *v1alpha1.BackupPlan) string {
	if p.Spec.TimeZone == "" {
		return "UTC"
	}
	return p.Spec.TimeZone
}

func findBackup(backups []v1alpha1.Backup, name string) *v1alpha1.Backup {
	for i := range backups {
		if backups[i].Name == name {
			return &backups[i]
		}
	}
	return nil
}

// slotTimeout is a plan's backup's timeout: done (or stopped) before the next slot, which would
// otherwise be skipped behind it, and never longer than a lone backup's. At least ten minutes: a
// Job's deadline counts from its creation, pod scheduling and image pull included, and a plan
// every minute or five would otherwise stop sound backups (it skips slots while one runs).
func slotTimeout(slot, next time.Time) time.Duration {
	return max(min(next.Sub(slot)-time.Minute, DefaultBackupTimeout), minSlotTimeout)
}

const minSlotTimeout = 10 * time.Minute

// schedule creates the slot's Backup, unless one of the plan's has not finished: two dumps of one
// instance at once only slow each other down (a CronJob's Forbid), and Backups waiting for an
// instance that is down must not pile up, one per slot.
func (r *PlanReconciler) schedule(ctx context.Context, p *v1alpha1.BackupPlan, backups []v1alpha1.Backup, slot, next time.Time) error {
	t := metav1.NewTime(slot)
	for _, b := range backups {
		if finishedPhase(b.Status.Phase) || !b.DeletionTimestamp.IsZero() {
			continue
		}
		p.Status.LastScheduleTime = &t
		if r.Recorder != nil {
			r.Recorder.Eventf(p, nil, "Warning", "BackupSkipped", "Schedule", "the %s slot was skipped: backup %s has not finished (%s)",
				slot.UTC().Format(time.RFC3339), b.Name, conditionMessage(b.Status.Conditions))
		}
		return nil
	}
	b := &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: backupName(p.Name, slot), Namespace: p.Namespace, Labels: map[string]string{PlanLabel: p.Name}},
		Spec: v1alpha1.BackupSpec{InstanceRef: p.Spec.InstanceRef, StoreRef: p.Spec.StoreRef, Method: p.Spec.Method,
			Timeout: &metav1.Duration{Duration: slotTimeout(slot, next)}},
	}
	if err := r.Client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	p.Status.LastScheduleTime = &t
	return nil
}

// prune deletes the Backups retention lets go; each Backup's finalizer deletes its objects from
// the store first, so objects and Backups go together. It returns when the next kept backup
// expires (UntilExpiry).
func (r *PlanReconciler) prune(ctx context.Context, p *v1alpha1.BackupPlan, backups []v1alpha1.Backup, now time.Time) (time.Duration, error) {
	var live []v1alpha1.Backup
	for _, b := range backups {
		if b.DeletionTimestamp.IsZero() {
			live = append(live, b)
		}
	}
	for _, name := range Prune(live, p.Spec.Retention, now) {
		if d := p.Status.LastDrill; d != nil && d.Result == DrillRunning && d.Backup == name {
			continue // a running drill restores it: it goes once the drill has finished
		}
		b := findBackup(live, name)
		if err := r.Client.Delete(ctx, b, client.Preconditions{UID: &b.UID}); client.IgnoreNotFound(err) != nil {
			return 0, err
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(p, nil, "Normal", "BackupPruned", "Prune", "backup %s is beyond the plan's retention", name)
		}
	}
	return UntilExpiry(live, p.Spec.Retention, now), nil
}

// SetupWithManager registers the controller: plans, their Backups and their drills' Restores.
func (r *PlanReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	byLabel := func(label string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if plan := o.GetLabels()[label]; plan != "" {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: plan}}}
			}
			return nil
		})
	}
	// Its own status writes do not run it again (a stale read of them would only conflict):
	// the schedule's timer and its Backups and drills' Restores do.
	return ctrl.NewControllerManagedBy(mgr).Named("backupplan").WithOptions(opts).
		For(&v1alpha1.BackupPlan{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Backup{}, byLabel(PlanLabel)).
		Watches(&v1alpha1.Restore{}, byLabel(DrillLabel)).
		Complete(r)
}

func finishedPhase(p v1alpha1.BackupPhase) bool {
	return p == v1alpha1.BackupCompleted || p == v1alpha1.BackupFailed
}
