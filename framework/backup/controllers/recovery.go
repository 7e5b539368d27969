package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// A physical backup is restored to a point in time by the new instance itself: the Restore writes
// the recovery's Secret (workload.RecoverySecretName) and creates the instance with
// workload.RecoveryAnnotation; its first primary's agent builds its data from the backup and the
// source's archived log (the agent's recovery), up to spec.targetTime, and the instance becomes
// Ready once the server has promoted itself there. No Job: the restore is done when the instance
// is Ready, and the Secret, which holds copies of the store's credentials and key, goes then.

// Reasons of a physical restore.
const (
	ReasonTargetTooEarly      = "TargetBeforeBackup"
	ReasonTargetOutsideWindow = "TargetOutsideWindow"
	ReasonWaitingForArchive   = "WaitingForArchive"
	ReasonNotPointInTime      = "LogicalBackupHasNoTarget"
)

// logicalTargetRefused refuses a point-in-time target on a logical backup (a dump), which restores
// to the moment it was taken: ignoring the target would restore other data than was asked for.
func logicalTargetRefused(rs *v1alpha1.Restore, b *v1alpha1.Backup) *outcome {
	if rs.Spec.TargetTime == nil && rs.Spec.TargetLSN == "" {
		return nil
	}
	return refused(ReasonNotPointInTime, fmt.Sprintf("Backup %q is logical (a dump): it restores to the moment it was taken; spec.targetTime and spec.targetLSN need a physical backup (spec.method: Physical) of an instance with continuous archiving", b.Name))
}

// physicalRestoreRefused says why a Restore of a physical backup cannot be done, before anything is made.
func physicalRestoreRefused(rs *v1alpha1.Restore, b *v1alpha1.Backup) *outcome {
	if t := rs.Spec.TargetTime; t != nil && b.Status.CompletionTime != nil && t.Before(b.Status.CompletionTime) {
		return refused(ReasonTargetTooEarly, fmt.Sprintf("spec.targetTime %s is before Backup %q completed (%s): no point before a backup's end can be restored from it; choose an earlier backup",
			t.UTC().Format(time.RFC3339), b.Name, b.Status.CompletionTime.UTC().Format(time.RFC3339)))
	}
	return nil
}

// outsideWindow checks a point-in-time target against the source instance's recoverable window
// (status.recoverableWindow), before the new instance is made: a target in the future or before the
// window is refused; one after the window's end waits while the source still archives (its status
// follows the archive by up to an archive timeout) and is refused once it no longer does (the
// instance gone or its archiving off: the archive will not grow). Without a window (the source
// gone, an archive from before windows were kept) only the backup's own end is checked
// (physicalRestoreRefused). Once the instance exists the check is not made again: the target was
// inside the window when the restore began.
func outsideWindow(rs *v1alpha1.Restore, source *v1alpha1.ServiceInstance, now time.Time) *outcome {
	t := rs.Spec.TargetTime
	if t == nil {
		return nil
	}
	at := t.UTC().Format(time.RFC3339)
	if t.After(now) {
		return refused(ReasonTargetOutsideWindow, fmt.Sprintf("spec.targetTime %s is in the future", at))
	}
	w := source.Status.RecoverableWindow
	if w == nil {
		return nil
	}
	window := fmt.Sprintf("instance %q can be restored from %s to %s (status.recoverableWindow)", source.Name,
		w.From.UTC().Format(time.RFC3339), w.To.UTC().Format(time.RFC3339))
	switch {
	case t.Before(&w.From):
		return refused(ReasonTargetOutsideWindow, fmt.Sprintf("spec.targetTime %s is before the recoverable window: %s", at, window))
	case insideWindow(t.Time, w):
		return nil
	case source.DeletionTimestamp.IsZero() && source.Continuous() != nil:
		return waiting(ReasonWaitingForArchive, fmt.Sprintf("spec.targetTime %s is past what the archive is known to reach: %s; waiting for it to reach the target", at, window))
	}
	return refused(ReasonTargetOutsideWindow, fmt.Sprintf("spec.targetTime %s is after the recoverable window, and the instance no longer archives: %s", at, window))
}

// insideWindow reports whether the time t is inside the window w (nil: none known).
func insideWindow(t time.Time, w *v1alpha1.RecoverableWindow) bool {
	return w != nil && !t.Before(w.From.Time) && !t.After(w.To.Time)
}

// writeRecoverySecret writes the Secret the new instance's pods read their recovery from: where
// the backup and the source's archive are, the target, and copies of the store's credentials and
// key (read past the cache, which holds only Datafleet's Secrets). It is owned by the Restore.
func (r *RestoreReconciler) writeRecoverySecret(ctx context.Context, rs *v1alpha1.Restore, b *v1alpha1.Backup, bs *v1alpha1.BackupStore,
	inst, source *v1alpha1.ServiceInstance, inPlace string) error {
	creds, _, err := storeCredentials(ctx, r.APIReader, bs)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for _, k := range store.CredentialKeys {
		if v, ok := creds[k]; ok {
			data[k] = v
		}
	}
	c := backup.RecoveryConfig{Backup: Dir(b),
		SegmentConfig: backup.SegmentConfig{URL: bs.Spec.URL, Prefix: bs.Spec.Prefix, Dir: archiveDir(b)}}
	if bs.Spec.CredentialsSecretRef != nil { // else the pods' ambient credentials, as the store's own
		c.CredentialsDir = workload.RecoveryMount
	}
	key, err := storeKey(ctx, r.APIReader, bs)
	if err != nil {
		return err
	}
	if key != nil {
		data[workload.RecoveryKeyKey], c.KeyFile = key, workload.RecoveryKeyFile
	}
	if t := rs.Spec.TargetTime; t != nil {
		c.TargetTime = t.UTC().Format(time.RFC3339Nano)
		// outsideWindow let the restore begin: a target inside the window is in the archive.
		c.TargetArchived = insideWindow(t.Time, source.Status.RecoverableWindow)
	}
	c.TargetLSN, c.InPlace = rs.Spec.TargetLSN, inPlace
	data[workload.RecoveryConfigKey], _ = json.Marshal(c)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: workload.RecoverySecretName(inst), Namespace: inst.Namespace,
			Labels: map[string]string{names.ManagedByLabel: names.ManagedBy, names.PartOfLabel: "datafleet"}},
		Data: data,
	}
	if err := controllerutil.SetControllerReference(rs, s, r.Client.Scheme()); err != nil {
		return err
	}
	err = r.Client.Create(ctx, s)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	// A Secret of that name that another Restore wrote (an earlier drill into the same scratch
	// instance, not yet collected with its Restore; an in-place restore that failed and is tried
	// again) would recover this instance to that Restore's target: it goes, and this one's is
	// written (CI found a drill restored to the previous drill's target).
	old := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), old); err != nil {
		return err
	}
	if metav1.IsControlledBy(old, rs) {
		return nil
	}
	if err := r.Client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); client.IgnoreNotFound(err) != nil {
		return err
	}
	return r.Client.Create(ctx, s)
}

// recovered follows a new instance's recovery: done once it is Ready, when its Secret goes.
func (r *RestoreReconciler) recovered(ctx context.Context, rs *v1alpha1.Restore, b *v1alpha1.Backup, target *v1alpha1.ServiceInstance, run run) (time.Duration, error) {
	if rs.Status.StartTime == nil { // once: running stamps the start, from which the restore's time counts
		run.running(fmt.Sprintf("instance %q recovers from physical backup %q and the archived log to %s", target.Name, b.Name, targetOf(rs)))
	}
	if !instanceReady(target) {
		// A recovery that cannot finish (a target past the archive's end, a store gone) leaves
		// an instance that never becomes Ready: spec.timeout ends the Restore, the instance stays
		// for its pods' logs.
		left := restoreTimeLeft(rs, run)
		if left <= 0 {
			return run.fail(job.ReasonDeadlineExceeded, fmt.Sprintf("instance %q did not recover within %s (spec.timeout): its pods' logs say why (a target past the archive's end stops PostgreSQL's recovery); the instance is kept",
				target.Name, timeoutOr(rs.Spec.Timeout, DefaultRestoreTimeout)))
		}
		return min(run.retry, left), nil
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: workload.RecoverySecretName(target), Namespace: target.Namespace}}
	if err := r.Client.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	run.succeed(fmt.Sprintf("instance %q recovered from physical backup %q and the archived log to %s", target.Name, b.Name, targetOf(rs)))
	return 0, nil
}

// restoreTimeLeft is what remains of a running restore's spec.timeout.
func restoreTimeLeft(rs *v1alpha1.Restore, run run) time.Duration {
	return timeoutOr(rs.Spec.Timeout, DefaultRestoreTimeout) - now(run.clock).Sub(rs.Status.StartTime.Time)
}

func targetOf(rs *v1alpha1.Restore) string {
	if t := rs.Spec.TargetTime; t != nil {
		return t.UTC().Format(time.RFC3339)
	}
	if rs.Spec.TargetLSN != "" {
		return "log position " + rs.Spec.TargetLSN
	}
	return "the end of the archive"
}
