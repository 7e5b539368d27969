package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=restores,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=datafleet.dev,resources=restores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=serviceinstances,verbs=create;delete

// Restore reasons.
const (
	ReasonBackupNotFound       = "BackupNotFound"
	ReasonBackupNotCompleted   = "BackupNotCompleted"
	ReasonBackupFailed         = "BackupFailed"
	ReasonConfirmationMismatch = "ConfirmationMismatch"
	ReasonTargetExists         = "TargetExists"
	// ReasonTargetRefused: the API server (the webhook) refused the new instance.
	ReasonTargetRefused = "TargetRefused"
	// ReasonNoUpgradePath: the catalog has no path from the backup's version to the one asked for.
	ReasonNoUpgradePath         = "NoUpgradePath"
	ReasonCreatingInstance      = "CreatingInstance"
	ReasonInstanceGone          = "InstanceGone"
	ReasonManifestUnreadable    = "ManifestUnreadable"
	ReasonDifferentEngineTarget = "EngineMismatch"
)

// RestoreReconciler restores a Completed Backup into a new instance it creates from the backup's
// manifest, or into the backed-up instance itself when the Restore confirms it by name.
type RestoreReconciler struct {
	Client    client.Client
	APIReader client.Reader
	// Policy is the platform's say over which stores may be used (store.Policy).
	Policy   store.Policy
	Engines  map[string]engine.Engine
	Image    string
	Recorder events.EventRecorder
	// Clock stamps the run's start and completion; nil is the wall clock.
	Clock clock.PassiveClock
	// Retry is how long a Restore that waits looks again after (15 s if zero); the store and
	// the Backup it waits for wake it sooner (wake.go).
	Retry time.Duration

	// own remembers what this reconciler's last writes to each object replaced.
	own apply.OwnWrites
}

func restoreJobName(rs *v1alpha1.Restore) string {
	return names.Child(rs.Name, "restore", names.MaxStatefulSet)
}

// Reconcile implements reconcile.Reconciler.
func (r *RestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &v1alpha1.Restore{}
	if err := r.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.own.Stale(req.NamespacedName, rs.ResourceVersion) {
		return apply.StaleRead()
	}
	before := rs.DeepCopy()
	requeue, err := r.progress(ctx, rs)
	if werr := writeStatus(ctx, r.Client, &r.own, before.ResourceVersion, before, rs, statusChanged(before.Status, rs.Status)); werr != nil {
		return apply.QuietConflict(ctrl.Result{}, werr)
	}
	if before.Status.Phase != rs.Status.Phase && r.Recorder != nil {
		switch rs.Status.Phase {
		case v1alpha1.BackupCompleted:
			r.Recorder.Eventf(rs, nil, "Normal", "Restored", "Restore", "%s", conditionMessage(rs.Status.Conditions))
		case v1alpha1.BackupFailed:
			r.Recorder.Eventf(rs, nil, "Warning", "RestoreFailed", "Restore", "%s", conditionMessage(rs.Status.Conditions))
		}
	}
	return apply.QuietConflict(ctrl.Result{RequeueAfter: requeue}, err)
}

func (r *RestoreReconciler) progress(ctx context.Context, rs *v1alpha1.Restore) (time.Duration, error) {
	st := &rs.Status
	run := run{st: &st.RunStatus, gen: rs.Generation, retry: cmp.Or(r.Retry, 15*time.Second), clock: r.Clock}
	if done, err := run.finished(ctx, r.Client, rs.Namespace, restoreJobName(rs)); done || err != nil {
		return 0, err
	}
	b := &v1alpha1.Backup{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: rs.Spec.BackupRef.Name}, b); err != nil {
		if apierrors.IsNotFound(err) {
			return run.pending(ReasonBackupNotFound, fmt.Sprintf("Backup %q does not exist", rs.Spec.BackupRef.Name))
		}
		return 0, err
	}
	switch b.Status.Phase {
	case v1alpha1.BackupCompleted:
	case v1alpha1.BackupFailed:
		return run.fail(ReasonBackupFailed, fmt.Sprintf("Backup %q failed: %s", b.Name, conditionMessage(b.Status.Conditions)))
	default:
		return run.pending(ReasonBackupNotCompleted, fmt.Sprintf("Backup %q is %s", b.Name, b.Status.Phase))
	}
	source := &v1alpha1.ServiceInstance{}
	// An imported backup's instance is (or was) in the cluster that took it: an instance of the
	// same name here is another one, whose recoverable window says nothing about this backup.
	if b.Spec.Import == nil {
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.InstanceRef.Name}, source); err != nil && !apierrors.IsNotFound(err) {
			return 0, err
		}
	}
	bs, reason, msg := readyStore(ctx, r.Client, b.Namespace, backupStore(b, source))
	if bs == nil {
		return run.pending(reason, msg)
	}

	physical := b.Spec.Method == v1alpha1.BackupPhysical
	if out := physicalRestoreRefused(rs, b); physical && out != nil {
		return run.stop(out)
	}
	if out := logicalTargetRefused(rs, b); !physical && st.Phase == v1alpha1.BackupPending && out != nil {
		// (Pending only: a restore an earlier operator already started is not failed under its Job.)
		return run.stop(out)
	}
	if physical && st.InstanceName == "" { // before the instance is made only: see outsideWindow
		at := now(run.clock)
		if out := outsideWindow(rs, source, at); out != nil {
			if limit := timeoutOr(rs.Spec.Timeout, DefaultRestoreTimeout); !out.final && at.Sub(rs.CreationTimestamp.Time) > limit {
				return run.fail(job.ReasonDeadlineExceeded, fmt.Sprintf("the archive did not reach spec.targetTime within %s (spec.timeout): %s", limit, out.message))
			}
			return run.stop(out)
		}
	}
	target, out, err := r.target(ctx, rs, b, bs, source)
	switch {
	case err != nil:
		return 0, err
	case out != nil:
		return run.stop(out)
	}
	st.InstanceName = target.Name
	if physical && rs.Spec.Target.InPlace != nil {
		return r.recoveredInPlace(ctx, rs, b, bs, target, run)
	}
	if physical {
		return r.recovered(ctx, rs, b, target, run)
	}
	e, ok := r.Engines[target.Spec.Engine].(engine.Backuper)
	if !ok {
		return run.pending(ReasonEngineNotEnabled, fmt.Sprintf("engine %q is not enabled or has no backups", target.Spec.Engine))
	}
	res, d, err := run.step(ctx, r.Client, r.APIReader, rs.Namespace, restoreJobName(rs), nil, func() (time.Duration, error) {
		if !instanceReady(target) {
			return run.pending(ReasonInstanceNotReady, fmt.Sprintf("waiting for instance %q to be ready", target.Name))
		}
		if reason, err := job.Compatible(engineOf(source, target), b.Status.EngineVersion, target.Spec.Engine, target.Status.Version); err != nil {
			return run.fail(reason, err.Error())
		}
		if err := r.start(ctx, rs, b, bs, target, e); err != nil {
			return 0, err
		}
		run.running(fmt.Sprintf("restoring Backup %q into instance %q: the Job verifies the checksum before it touches any data", b.Name, target.Name))
		return 0, nil
	})
	if res == nil {
		return d, err
	}
	// Bindings of the instance ensure their users again: the restore may have replaced the
	// databases or vhosts their grants were on.
	if target.Annotations[RestoredAnnotation] != rs.Name {
		before := target.DeepCopy()
		metav1.SetMetaDataAnnotation(&target.ObjectMeta, RestoredAnnotation, rs.Name)
		if err := r.Client.Patch(ctx, target, client.MergeFrom(before)); err != nil {
			return 0, err
		}
	}
	run.succeed(res.Message)
	return 0, nil
}

// engineOf is the backed-up instance's engine if it still exists; otherwise the target's, and
// the Job checks the manifest's.
func engineOf(source, target *v1alpha1.ServiceInstance) string {
	if source.Spec.Engine != "" {
		return source.Spec.Engine
	}
	return target.Spec.Engine
}

// target is the instance to restore into: the source itself (in place, confirmed by name), or a
// new instance created from the manifest's copy of the source's spec.
func (r *RestoreReconciler) target(ctx context.Context, rs *v1alpha1.Restore, b *v1alpha1.Backup, bs *v1alpha1.BackupStore,
	source *v1alpha1.ServiceInstance) (*v1alpha1.ServiceInstance, *outcome, error) {
	inst := &v1alpha1.ServiceInstance{}
	if ip := rs.Spec.Target.InPlace; ip != nil {
		if ip.Confirm != b.Spec.InstanceRef.Name {
			return nil, refused(ReasonConfirmationMismatch, fmt.Sprintf("spec.target.inPlace.confirm is %q: it must be %q, the name of the instance whose data this restore overwrites", ip.Confirm, b.Spec.InstanceRef.Name)), nil
		}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: b.Spec.InstanceRef.Name}, inst); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, waiting(ReasonInstanceNotFound, fmt.Sprintf("instance %q does not exist", b.Spec.InstanceRef.Name)), nil
			}
			return nil, nil, err
		}
		return inst, nil, nil
	}
	ni := rs.Spec.Target.NewInstance
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: ni.Name}, inst)
	if err == nil {
		if inst.Annotations[RestoredByAnnotation] != rs.Name {
			return nil, refused(ReasonTargetExists, fmt.Sprintf("instance %q exists already and was not created by this Restore: choose a new name, or restore in place", ni.Name)), nil
		}
		return inst, nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, nil, err
	}
	if rs.Status.InstanceName != "" {
		// The cache may not have the instance this Restore just created: ask the API server.
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: ni.Name}, inst); err == nil {
			return nil, waiting(ReasonCreatingInstance, fmt.Sprintf("created instance %q", ni.Name)), nil
		} else if !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
		return nil, refused(ReasonInstanceGone, fmt.Sprintf("instance %q, which this Restore created, was deleted before the restore finished", ni.Name)), nil
	}
	spec, err := r.sourceSpec(ctx, b, bs)
	if errors.Is(err, backup.ErrUnauthenticated) || errors.Is(err, backup.ErrWrongKey) {
		return nil, waiting(job.AuthReason(err), err.Error()), nil
	}
	if err != nil {
		return nil, refused(ReasonManifestUnreadable, err.Error()), nil
	}
	if ni.Version != "" && ni.Version != spec.Version {
		if out, err := r.checkUpgrade(ctx, spec, ni.Version); out != nil || err != nil {
			return nil, out, err
		}
		spec.Version = ni.Version
	}
	// spec.primary names a pod of the backed-up instance, none of the new one's.
	spec.Primary = ""
	inst = &v1alpha1.ServiceInstance{
		ObjectMeta: metav1.ObjectMeta{Name: ni.Name, Namespace: rs.Namespace,
			Annotations: map[string]string{RestoredByAnnotation: rs.Name}, Labels: map[string]string{}},
		Spec: spec,
	}
	if plan := rs.Labels[DrillLabel]; plan != "" {
		// A drill's scratch instance: the smallest that proves the restore, and deleted whole.
		inst.Labels[DrillLabel] = plan
		inst.Spec.Replicas, inst.Spec.SynchronousReplicas = ptr.To[int32](1), nil
		inst.Spec.DeletionPolicy, inst.Spec.DeletionProtection = v1alpha1.DeletionPolicyDelete, false
		inst.Spec.Backup, inst.Spec.BindingPolicy = nil, nil
	}
	if b.Spec.Method == v1alpha1.BackupPhysical {
		inst.Annotations[workload.RecoveryAnnotation] = b.Name
		if err := r.writeRecoverySecret(ctx, rs, b, bs, inst, source, ""); err != nil {
			return nil, nil, err
		}
	}
	if err := r.Client.Create(ctx, inst); apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
		// The webhook or a schema refused the new instance (a version past its sundown, a plan
		// that went): retrying cannot help.
		return nil, refused(ReasonTargetRefused, err.Error()), nil
	} else if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, err
	}
	rs.Status.InstanceName = ni.Name
	return nil, waiting(ReasonCreatingInstance, fmt.Sprintf("created instance %q from the backup's copy of %q's spec", ni.Name, b.Spec.InstanceRef.Name)), nil
}

// checkUpgrade refuses a new instance on a version the backed-up one has no upgrade path to.
func (r *RestoreReconciler) checkUpgrade(ctx context.Context, spec v1alpha1.ServiceInstanceSpec, to string) (*outcome, error) {
	if spec.Version == "" {
		return nil, nil
	}
	cat := &v1alpha1.VersionCatalog{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: spec.Engine}, cat); err != nil {
		// Without a catalog the instance cannot be created either; its creation says so.
		return nil, client.IgnoreNotFound(err)
	}
	if err := catalog.CheckBlueGreen(cat, spec.Version, to); err != nil {
		return refused(ReasonNoUpgradePath, err.Error()), nil
	}
	return nil, nil
}

// sourceSpec is the backed-up instance's spec from the manifest, which outlives the instance.
func (r *RestoreReconciler) sourceSpec(ctx context.Context, b *v1alpha1.Backup, bs *v1alpha1.BackupStore) (v1alpha1.ServiceInstanceSpec, error) {
	var spec v1alpha1.ServiceInstanceSpec
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, _, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return spec, err
	}
	defer st.Close()
	m, err := readManifest(ctx, r.APIReader, st, bs, Dir(b))
	if err != nil {
		return spec, err
	}
	if err := json.Unmarshal(m.Source, &spec); err != nil {
		return spec, fmt.Errorf("the manifest's copy of the instance's spec: %w", err)
	}
	return spec, nil
}

func (r *RestoreReconciler) start(ctx context.Context, rs *v1alpha1.Restore, b *v1alpha1.Backup, bs *v1alpha1.BackupStore,
	target *v1alpha1.ServiceInstance, e engine.Backuper) error {
	j := job.Build(job.Input{
		Name: restoreJobName(rs), Namespace: rs.Namespace, Mode: job.ModeLoad, Component: job.ComponentRestore, Owner: rs.Name,
		Image: r.Image, Engine: target.Spec.Engine, Instance: target, Version: target.Status.Version, Store: bs,
		Dir: Dir(b), Backup: b.Name, EngineEnv: e.BackupEnv(target), Deadline: timeoutOr(rs.Spec.Timeout, DefaultRestoreTimeout),
	})
	if err := controllerutil.SetControllerReference(rs, j, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, j); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// SetupWithManager registers the controller: Restores, their Jobs, and the Backups and instances
// they wait for.
func (r *RestoreReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	// A new instance's changes reach the Restore that created it at once: its readiness ends a
	// point-in-time restore, whose time is the instance's recovery (not a polling interval).
	// An instance restored in place reaches the Restores running into it, likewise.
	restoredBy := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		if name := o.GetAnnotations()[RestoredByAnnotation]; name != "" {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
		}
		if o.GetAnnotations()[workload.InPlaceRecoveryAnnotation] == "" {
			return reqs
		}
		restores := &v1alpha1.RestoreList{}
		if err := r.Client.List(ctx, restores, client.InNamespace(o.GetNamespace())); err != nil {
			return reqs
		}
		for _, rs := range restores.Items {
			if rs.Status.InstanceName == o.GetName() && rs.Status.Phase == v1alpha1.BackupRunning {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rs)})
			}
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).Named("restore").WithOptions(opts).
		For(&v1alpha1.Restore{}).Owns(&batchv1.Job{}).
		Watches(&v1alpha1.ServiceInstance{}, restoredBy).
		Watches(&v1alpha1.BackupStore{}, wakeRestores(r.Client), builder.WithPredicates(storeTurnedReady)).
		Watches(&v1alpha1.Backup{}, wakeRestores(r.Client), builder.WithPredicates(backupFinished)).Complete(r)
}
