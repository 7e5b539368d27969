package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"gocloud.dev/blob"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
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
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=backups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=datafleet.dev,resources=backups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=backups/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// BackupFinalizer deletes a Backup's artefact from the store before the Backup goes.
const BackupFinalizer = "datafleet.dev/backup"

// BackupReconciler runs each Backup's dump Job and records what its manifest says.
type BackupReconciler struct {
	Client    client.Client
	APIReader client.Reader
	// Policy is the platform's say over which stores may be used (store.Policy).
	Policy  store.Policy
	Engines map[string]engine.Engine
	// Image is the operator's own image, which the Jobs run.
	Image    string
	Recorder events.EventRecorder
	// Clock stamps the run's start and completion; nil is the wall clock.
	Clock clock.PassiveClock
	// Retry is how long a Backup that waits looks again after (30 s if zero); the store it
	// waits for wakes it sooner (wake.go).
	Retry time.Duration

	// own remembers what this reconciler's last writes to each object replaced.
	own apply.OwnWrites
}

func backupJobName(b *v1alpha1.Backup) string {
	return names.Child(b.Name, "backup", names.MaxStatefulSet)
}

// Reconcile implements reconcile.Reconciler.
func (r *BackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &v1alpha1.Backup{}
	if err := r.Client.Get(ctx, req.NamespacedName, b); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.own.Stale(req.NamespacedName, b.ResourceVersion) {
		return apply.StaleRead()
	}
	if !b.DeletionTimestamp.IsZero() {
		return apply.QuietConflict(ctrl.Result{}, r.finalize(ctx, b))
	}
	read := b.ResourceVersion
	if err := apply.AddFinalizer(ctx, r.Client, b, BackupFinalizer); err != nil {
		return apply.QuietConflict(ctrl.Result{}, err)
	}
	before := b.DeepCopy()
	requeue, err := r.progress(ctx, b)
	if werr := writeStatus(ctx, r.Client, &r.own, read, before, b, statusChanged(before.Status, b.Status)); werr != nil {
		return apply.QuietConflict(ctrl.Result{}, werr)
	}
	if before.Status.Phase != b.Status.Phase && (b.Status.Phase == v1alpha1.BackupCompleted || b.Status.Phase == v1alpha1.BackupFailed) {
		r.event(b, b.Status.Phase)
	}
	return apply.QuietConflict(ctrl.Result{RequeueAfter: requeue}, err)
}

func (r *BackupReconciler) event(b *v1alpha1.Backup, phase v1alpha1.BackupPhase) {
	if r.Recorder == nil {
		return
	}
	kind, reason, note := "Normal", "BackupCompleted", fmt.Sprintf("%d bytes at %s", b.Status.SizeBytes, b.Status.Location)
	if phase == v1alpha1.BackupFailed {
		kind, reason, note = "Warning", "BackupFailed", conditionMessage(b.Status.Conditions)
	}
	r.Recorder.Eventf(b, nil, kind, reason, "Backup", "%s", note)
}

// progress moves the Backup one step: wait for its instance and store, start the Job, record the
// result. A finished Backup does not change.
func (r *BackupReconciler) progress(ctx context.Context, b *v1alpha1.Backup) (time.Duration, error) {
	st := &b.Status
	run := run{st: &st.RunStatus, gen: b.Generation, retry: cmp.Or(r.Retry, 30*time.Second), clock: r.Clock}
	if done, err := run.finished(ctx, r.Client, b.Namespace, backupJobName(b)); done || err != nil {
		return 0, err
	}
	if b.Spec.Import != nil {
		return r.imported(ctx, b, run)
	}
	inst := &v1alpha1.ServiceInstance{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.InstanceRef.Name}, inst); err != nil {
		if apierrors.IsNotFound(err) {
			return run.pending(ReasonInstanceNotFound, fmt.Sprintf("instance %q does not exist", b.Spec.InstanceRef.Name))
		}
		return 0, err
	}
	e, ok := r.Engines[inst.Spec.Engine]
	if !ok {
		return run.pending(ReasonEngineNotEnabled, fmt.Sprintf("engine %q is not enabled in this operator", inst.Spec.Engine))
	}
	backuper, ok := e.(engine.Backuper)
	if !ok {
		return run.fail(ReasonNotSupported, fmt.Sprintf("engine %s has no backups", e.Name()))
	}
	if b.Spec.Method == v1alpha1.BackupPhysical {
		if reason, msg := physicalRefused(e, inst, backupStore(b, inst)); reason != "" {
			return run.fail(reason, msg)
		}
	}
	bs, reason, msg := readyStore(ctx, r.Client, b.Namespace, backupStore(b, inst))
	if bs == nil && st.Phase == v1alpha1.BackupRunning {
		// A running Job decides; the store's probe failing meanwhile changes nothing yet.
		bs = &v1alpha1.BackupStore{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: backupStore(b, inst)}, bs); err != nil {
			return run.pending(reason, msg)
		}
	}
	if bs == nil {
		return run.pending(reason, msg)
	}
	gone := func() (bool, error) { return r.completedWithoutJob(ctx, b, bs, run) }
	res, d, err := run.step(ctx, r.Client, r.APIReader, b.Namespace, backupJobName(b), gone, func() (time.Duration, error) {
		switch reason, msg := r.keyProblem(ctx, bs); reason {
		case ReasonKeyMissing:
			return run.pending(reason, msg)
		case ReasonWeakKey:
			return run.fail(reason, msg)
		}
		if !instanceReady(inst) {
			return run.pending(ReasonInstanceNotReady, fmt.Sprintf("instance %q is not ready", inst.Name))
		}
		if err := r.start(ctx, b, inst, bs, backuper); err != nil {
			return 0, err
		}
		run.running("the backup Job is running")
		return 0, nil
	})
	if res == nil {
		return d, err
	}
	return 0, r.complete(ctx, b, bs, run)
}

// completedWithoutJob completes a running Backup whose Job is gone (run.step asks) but whose
// manifest is in the store: only a manifest makes a backup complete, and a Job that wrote it did
// its work, whoever deleted the Job since. Without the manifest the run is lost.
func (r *BackupReconciler) completedWithoutJob(ctx context.Context, b *v1alpha1.Backup, bs *v1alpha1.BackupStore, run run) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, _, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return false, err
	}
	defer st.Close()
	if _, err := readManifest(ctx, r.APIReader, st, bs, Dir(b)); errors.Is(err, backup.ErrIncomplete) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, r.complete(ctx, b, bs, run)
}

// keyProblem says why a keyed store's key cannot encrypt a new backup (missing, or weak:
// backup.CheckKey), "" when it can or the store has none. A weak key fails the Backup before a Job
// is made; backups taken with it before stay restorable.
func (r *BackupReconciler) keyProblem(ctx context.Context, bs *v1alpha1.BackupStore) (reason, msg string) {
	key, err := storeKey(ctx, r.APIReader, bs)
	if err != nil {
		return ReasonKeyMissing, err.Error()
	}
	if key == nil {
		return "", ""
	}
	if err := backup.CheckKey(key); err != nil {
		return ReasonWeakKey, fmt.Sprintf("BackupStore %q: %v; backups taken with it before stay restorable with it", bs.Name, err)
	}
	return "", ""
}

// readyStore returns the named BackupStore if its probe succeeded, else why not.
func readyStore(ctx context.Context, c client.Reader, ns, name string) (*v1alpha1.BackupStore, string, string) {
	if name == "" {
		return nil, ReasonNoStore, "no store: set spec.storeRef, or spec.backup.storeRef on the instance"
	}
	bs := &v1alpha1.BackupStore{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bs); err != nil {
		return nil, ReasonStoreNotFound, fmt.Sprintf("BackupStore %q: %v", name, err)
	}
	if c := findReady(bs.Status.Conditions); c == nil || c.Status != metav1.ConditionTrue {
		msg := fmt.Sprintf("BackupStore %q is not ready", name)
		if c != nil {
			msg += ": " + c.Message
		}
		return nil, ReasonStoreNotReady, msg
	}
	return bs, "", ""
}

func (r *BackupReconciler) start(ctx context.Context, b *v1alpha1.Backup, inst *v1alpha1.ServiceInstance, bs *v1alpha1.BackupStore, e engine.Backuper) error {
	j := job.Build(job.Input{
		Name: backupJobName(b), Namespace: b.Namespace, Mode: job.ModeDump, Component: job.ComponentBackup, Owner: b.Name,
		Image: r.Image, Engine: inst.Spec.Engine, Instance: inst, Version: inst.Status.Version, Store: bs,
		Dir: Dir(b), Backup: b.Name, EngineEnv: e.BackupEnv(inst), Deadline: timeoutOr(b.Spec.Timeout, DefaultBackupTimeout),
		Method: string(b.Spec.Method),
	})
	if err := controllerutil.SetControllerReference(b, j, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, j); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	dir := Dir(b) // before status.location is set, which alone would mean an old path
	b.Status.EngineVersion, b.Status.Location, b.Status.Store, b.Status.Path = inst.Status.Version, location(bs, dir), bs.Name, dir
	return nil
}

// complete reads the manifest the Job wrote: only a manifest makes a backup complete.
func (r *BackupReconciler) complete(ctx context.Context, b *v1alpha1.Backup, bs *v1alpha1.BackupStore, run run) error {
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, _, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := readManifest(ctx, r.APIReader, st, bs, Dir(b))
	if errors.Is(err, backup.ErrIncomplete) {
		_, err = run.fail(job.ReasonIncomplete, err.Error())
		return err
	}
	if err != nil {
		return err
	}
	run.succeed(fmt.Sprintf("%d bytes (%d before compression) of %s %s", m.Size, m.RawSize, m.Engine, m.EngineVersion))
	ct := metav1.NewTime(m.Completed.Truncate(time.Second))
	b.Status.CompletionTime, b.Status.SizeBytes, b.Status.SHA256, b.Status.Encrypted = &ct, m.Size, m.SHA256, m.Encryption != nil
	return nil
}

// finalize deletes the Backup's objects from the store, then lets it go. A Backup that never
// started a Job has nothing in the store. While a Restore still needs the backup (a plan pruned
// it, or someone deleted it, in the middle of a recovery) the objects stay and the Backup waits.
func (r *BackupReconciler) finalize(ctx context.Context, b *v1alpha1.Backup) error {
	readers, err := r.restoresReading(ctx, b)
	if err != nil {
		return err
	}
	if len(readers) > 0 {
		before := b.DeepCopy()
		setReady(&b.Status.Conditions, b.Generation, false, ReasonRestoreInProgress, fmt.Sprintf(
			"deleted once Restore %s, which reads this backup, has finished or is deleted", strings.Join(readers, ", ")))
		return writeStatus(ctx, r.Client, &r.own, b.ResourceVersion, before, b, statusChanged(before.Status, b.Status))
	}
	// An imported backup's objects are not this Backup's: another cluster may use them.
	if b.Status.StartTime != nil && b.Spec.Import == nil {
		err := r.deleteArtefact(ctx, b)
		var gone *storeGoneError
		if errors.As(err, &gone) {
			// Nothing can reach the objects any more (the namespace is being deleted, say): the
			// Backup goes and the objects stay, which loses nothing.
			if r.Recorder != nil {
				r.Recorder.Eventf(b, nil, "Warning", "ArtefactLeft", "Delete", "the backup's objects stay in the store at %s: %v", b.Status.Location, gone.err)
			}
			err = nil
		}
		if err != nil {
			before := b.DeepCopy()
			setReady(&b.Status.Conditions, b.Generation, false, ReasonDeleteFailed, "deleting the backup's objects from the store: "+err.Error())
			_ = writeStatus(ctx, r.Client, &r.own, b.ResourceVersion, before, b, statusChanged(before.Status, b.Status))
			return err
		}
	}
	return apply.RemoveFinalizer(ctx, r.Client, b, BackupFinalizer)
}

// restoresReading names the Restores of the Backup that have neither finished nor are being
// deleted. It asks the API server: a Restore created a moment ago must not miss the check.
func (r *BackupReconciler) restoresReading(ctx context.Context, b *v1alpha1.Backup) ([]string, error) {
	list := &v1alpha1.RestoreList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return nil, err
	}
	var out []string
	for _, rs := range list.Items {
		if rs.Spec.BackupRef.Name == b.Name && rs.DeletionTimestamp.IsZero() &&
			rs.Status.Phase != v1alpha1.BackupCompleted && rs.Status.Phase != v1alpha1.BackupFailed {
			out = append(out, rs.Name)
		}
	}
	return out, nil
}

func (r *BackupReconciler) deleteArtefact(ctx context.Context, b *v1alpha1.Backup) error {
	inst := &v1alpha1.ServiceInstance{}
	_ = r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.InstanceRef.Name}, inst)
	name := backupStore(b, inst)
	bs := &v1alpha1.BackupStore{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: name}, bs); err != nil {
		if apierrors.IsNotFound(err) {
			return &storeGoneError{fmt.Errorf("BackupStore %q is gone", name)}
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, reason, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if (reason == ReasonCredentialsMissing || reason == ReasonStoreNotAllowed) && err != nil {
		// The operator cannot reach the objects (nor, for a store the policy refuses, may it):
		// the Backup goes, its objects stay, with a warning.
		return &storeGoneError{err}
	}
	if err != nil {
		return err
	}
	defer st.Close()
	// The manifest first: from then on what is left is not a backup.
	keys := []string{st.Key(Dir(b), backup.ManifestName)}
	it := st.Bucket.List(&blob.ListOptions{Prefix: st.Key(Dir(b)) + "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if obj.Key != keys[0] {
			keys = append(keys, obj.Key)
		}
		if len(keys) > maxBackupObjects {
			return fmt.Errorf("%s lists more than %d objects, which no backup writes: delete them in the store", st.Key(Dir(b)), maxBackupObjects)
		}
	}
	for _, k := range keys {
		if err := st.Bucket.Delete(ctx, k); err != nil && !isNotFound(err) {
			return err
		}
	}
	// A Job killed in the middle of its upload left the parts uploaded so far, billed until
	// aborted.
	var data []string
	for _, name := range backup.DataObjects {
		data = append(data, st.Key(Dir(b), name))
	}
	if _, err := st.AbortUploads(ctx, data...); err != nil {
		return err
	}
	if b.Spec.Method == v1alpha1.BackupPhysical {
		r.pruneAfter(ctx, b, st, bs)
	}
	return nil
}

// pruneTimeout bounds the archive's pruning after a physical Backup goes: a first prune of a long
// archive deletes thousands of segments, more than the deletion's own store calls may take.
const pruneTimeout = 2 * time.Minute

// pruneAfter prunes the archive of a physical Backup's instance once its objects are gone, and
// says what it did in an event. It does not hold the Backup back: what it could not remove (a
// timeout, a store error) is removed when the next physical Backup of the instance goes, since
// each prune removes everything the Backups left supersede.
func (r *BackupReconciler) pruneAfter(ctx context.Context, b *v1alpha1.Backup, st *store.Store, bs *v1alpha1.BackupStore) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pruneTimeout)
	defer cancel()
	n, err := r.pruneArchive(ctx, b, st, bs)
	switch {
	case r.Recorder == nil:
	case err != nil:
		r.Recorder.Eventf(b, nil, "Warning", "ArchivePruneIncomplete", "Delete", "removed %d archived segments of instance %q; the rest go when its next physical backup does: %s",
			n, b.Spec.InstanceRef.Name, store.Redact(err.Error()))
	case n > 0:
		r.Recorder.Eventf(b, nil, "Normal", "ArchivePruned", "Delete", "removed %d archived segments of instance %q that no physical backup left replays", n, b.Spec.InstanceRef.Name)
	}
}

// SetupWithManager registers the controller: Backups, their Jobs, the Restores that read
// them (a deleted Backup waits for those) and the stores that turn Ready (wake.go).
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).Named("backup").WithOptions(opts).
		For(&v1alpha1.Backup{}).Owns(&batchv1.Job{}).
		Watches(&v1alpha1.Restore{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			rs := o.(*v1alpha1.Restore)
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: rs.Namespace, Name: rs.Spec.BackupRef.Name}}}
		})).
		Watches(&v1alpha1.BackupStore{}, wakeBackups(r.Client), builder.WithPredicates(storeTurnedReady)).
		Complete(r)
}

// storeGoneError means the store or its credentials no longer exist.
type storeGoneError struct{ err error }

func (e *storeGoneError) Error() string { return e.err.Error() }

// location names a backup's directory as bucket URL and path, without the URL's options.
func location(bs *v1alpha1.BackupStore, dir string) string {
	u, err := url.Parse(bs.Spec.URL)
	if err != nil {
		return path.Join(bs.Spec.Prefix, dir)
	}
	return u.Scheme + "://" + path.Join(u.Host+u.Path, bs.Spec.Prefix, dir) + "/"
}

// physicalRefused says why a physical backup of inst cannot be taken: an engine without them, or
// an instance that does not archive its log (a base backup without the log after it restores
// nothing consistent).
func physicalRefused(e engine.Engine, inst *v1alpha1.ServiceInstance, store string) (reason, message string) {
	if _, ok := e.(engine.PhysicalBackuper); !ok {
		return ReasonNotSupported, fmt.Sprintf("engine %s has no physical backups; use method Logical", e.Name())
	}
	if inst.Continuous() == nil {
		return ReasonNotArchiving, fmt.Sprintf("a physical backup is restored by replaying the archived log after it, and instance %q does not archive: set its spec.backup.continuous first", inst.Name)
	}
	// A base backup and the log that makes it restorable live and go together.
	if archive := inst.Spec.Backup.StoreRef.Name; store != archive {
		return ReasonNotArchiving, fmt.Sprintf("instance %q archives its log to the BackupStore %q: a physical backup goes there too, not to %q", inst.Name, archive, store)
	}
	return "", ""
}
