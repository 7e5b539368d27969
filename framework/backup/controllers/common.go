package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"gocloud.dev/gcerrors"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// Shared reasons.
const (
	ReasonInstanceNotFound   = "InstanceNotFound"
	ReasonInstanceNotReady   = "InstanceNotReady"
	ReasonStoreNotFound      = "StoreNotFound"
	ReasonStoreNotReady      = "StoreNotReady"
	ReasonNoStore            = "NoStore"
	ReasonNotSupported       = "BackupsNotSupported"
	ReasonEngineNotEnabled   = "EngineNotEnabled"
	ReasonRunning            = "Running"
	ReasonJobLost            = "JobLost"
	ReasonDeleteFailed       = "DeleteFailed"
	ReasonCredentialsMissing = "CredentialsNotFound"
	// ReasonKeyMissing: the store's encryption key Secret or key does not exist (yet).
	ReasonKeyMissing = "EncryptionKeyNotFound"
	// ReasonWeakKey: the store's encryption key is too weak to encrypt a new backup with.
	ReasonWeakKey = "WeakKey"
	// ReasonRestoreInProgress: a deleted Backup waits for the Restores that still read it.
	ReasonRestoreInProgress = "RestoreInProgress"
)

// Labels and annotations the backup kinds use.
const (
	// PlanLabel marks a Backup made by a BackupPlan (the plan's name).
	PlanLabel = "datafleet.dev/backup-plan"
	// HoldLabel "true" keeps a Backup from being pruned, like spec.hold.
	HoldLabel = "datafleet.dev/hold"
	// RestoredByAnnotation marks an instance a Restore created (the Restore's name).
	RestoredByAnnotation = "datafleet.dev/restored-by"
	// RestoredAnnotation records the last Restore applied to an instance; changing it makes the
	// instance's bindings ensure their users again (a restore may have replaced vhosts or grants).
	RestoredAnnotation = "datafleet.dev/last-restore"
	// DrillLabel marks a scratch instance and Restore of a plan's verification drill.
	DrillLabel = "datafleet.dev/drill-of"
)

// Timeouts of backup and restore Jobs when their spec gives none (spec.timeout).
const (
	DefaultBackupTimeout  = 6 * time.Hour
	DefaultRestoreTimeout = 12 * time.Hour
)

// timeoutOr is d's duration, or def when d is nil.
func timeoutOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}

// storeCallTimeout bounds what the operator itself does with a store (a probe, a manifest read,
// deleting a backup's objects): a store that answers slowly, or never, holds one reconcile that
// long and no more. The data itself moves in Jobs, with their own deadlines.
const storeCallTimeout = 30 * time.Second

// maxBackupObjects is how many objects a backup's directory may list when it is deleted: a
// backup writes three, and a store that lists without end must not fill the operator's memory.
const maxBackupObjects = 1000

// ReasonStoreNotAllowed: the platform's store policy refuses the store (store.Policy).
const ReasonStoreNotAllowed = "StoreNotAllowed"

// openStore opens a BackupStore for the operator's own calls, if the platform's policy allows it,
// with its credentials Secret read from the API server: the cache holds only Secrets the operator
// labelled.
func openStore(ctx context.Context, r client.Reader, bs *v1alpha1.BackupStore, policy store.Policy) (*store.Store, string, error) {
	if err := policy.Check(bs.Spec.URL, bs.Spec.CredentialsSecretRef != nil); err != nil {
		return nil, ReasonStoreNotAllowed, err
	}
	var creds map[string][]byte
	if ref := bs.Spec.CredentialsSecretRef; ref != nil {
		s := &corev1.Secret{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: bs.Namespace, Name: ref.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, ReasonCredentialsMissing, fmt.Errorf("the credentials Secret %q does not exist", ref.Name)
			}
			return nil, "CredentialsUnreadable", err
		}
		creds = s.Data
	}
	st, err := store.Open(ctx, bs.Spec.URL, bs.Spec.Prefix, creds)
	if err != nil {
		return nil, "OpenFailed", err
	}
	return st, "", nil
}

// storeKey reads the store's encryption key, nil when it has none: the operator authenticates
// a manifest with it (backup.Authenticate) before it believes anything the manifest says.
func storeKey(ctx context.Context, r client.Reader, bs *v1alpha1.BackupStore) ([]byte, error) {
	e := bs.Spec.Encryption
	if e == nil {
		return nil, nil
	}
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: bs.Namespace, Name: e.KeySecretRef.Name}, s); err != nil {
		return nil, fmt.Errorf("the encryption key Secret %q: %w", e.KeySecretRef.Name, err)
	}
	key := s.Data[e.KeySecretRef.Key]
	if len(key) == 0 {
		return nil, fmt.Errorf("the encryption key Secret %q has no key %q", e.KeySecretRef.Name, e.KeySecretRef.Key)
	}
	return key, nil
}

// readManifest reads a backup's manifest and authenticates it with the store's key.
func readManifest(ctx context.Context, r client.Reader, st *store.Store, bs *v1alpha1.BackupStore, dir string) (backup.Manifest, error) {
	m, err := backup.ReadManifest(ctx, st, dir)
	if err != nil {
		return m, err
	}
	key, err := storeKey(ctx, r, bs)
	if err != nil {
		return m, err
	}
	return m, backup.Authenticate(m, key)
}

// sharedScheme reports whether a store URL's objects can be seen by other pods (store.Shareable).
func sharedScheme(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && store.Shareable(u.Scheme)
}

// setCondition sets the Ready condition on a status's conditions.
func setReady(conds *[]metav1.Condition, gen int64, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason,
		Message: truncate(message, 2048), ObservedGeneration: gen})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// writeStatus patches obj's status from before, once, and only if it changed.
func writeStatus(ctx context.Context, c client.Client, before, obj client.Object, changed bool) error {
	if !changed {
		return nil
	}
	return client.IgnoreNotFound(apply.PatchStatus(ctx, c, before, obj))
}

func statusChanged(a, b any) bool { return !equality.Semantic.DeepEqual(a, b) }

// jobState reads a Job: finished or not, and its pod's result when it finished.
func jobState(ctx context.Context, c client.Reader, j *batchv1.Job) (done bool, res job.Result) {
	// A Job whose pod says nothing failed in its own mode: dumping or loading.
	failedReason := job.ReasonDumpFailed
	if cs := j.Spec.Template.Spec.Containers; len(cs) > 0 && cs[0].Name == job.ModeLoad {
		failedReason = job.ReasonLoadFailed
	}
	var complete, failed bool
	for _, cond := range j.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete:
			complete = true
		case batchv1.JobFailed:
			failed = true
			res = job.Result{Reason: failedReason, Message: cond.Message}
			if cond.Reason == batchv1.JobReasonDeadlineExceeded {
				// Killed at its deadline without a word of its own (a pod that stopped itself
				// first says why below).
				res = job.Result{Reason: job.ReasonDeadlineExceeded, Message: "the Job ran past its deadline and was stopped: " + cond.Message}
			}
		}
	}
	if !complete && !failed {
		return false, res
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(j.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": j.Name}); err == nil {
		for i := range pods.Items {
			if r, ok := job.ParseResult(&pods.Items[i]); ok {
				res = r
				break
			}
		}
	}
	if complete && res.Reason == "" {
		res = job.Result{Reason: job.ReasonCompleted}
	}
	if failed && res.Reason == job.ReasonCompleted {
		res.Reason = failedReason
	}
	return true, res
}

// instanceReady reports whether the instance's Ready condition is True for its current spec.
func instanceReady(inst *v1alpha1.ServiceInstance) bool {
	c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && inst.Status.Version != ""
}

func now() *metav1.Time { t := metav1.NewTime(time.Now().Truncate(time.Second)); return &t }

// backupStore is the store a Backup was written to (status.store, from its Job's start), else
// the one it names or its instance's default: a Backup outlives its instance and its instance's
// settings (review M4).
func backupStore(b *v1alpha1.Backup, inst *v1alpha1.ServiceInstance) string {
	if b.Status.Store != "" {
		return b.Status.Store
	}
	return storeOf(b.Spec.StoreRef, inst)
}

// storeOf is the store a Backup or plan names, else the instance's default.
func storeOf(ref *v1alpha1.LocalObjectReference, inst *v1alpha1.ServiceInstance) string {
	if ref != nil {
		return ref.Name
	}
	if inst.Spec.Backup != nil && inst.Spec.Backup.StoreRef != nil {
		return inst.Spec.Backup.StoreRef.Name
	}
	return ""
}

func redact(s string) string { return strings.TrimSpace(store.Redact(s)) }

func findReady(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
}

func conditionMessage(conds []metav1.Condition) string {
	if c := findReady(conds); c != nil {
		return c.Reason + ": " + c.Message
	}
	return ""
}

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

// deleteJob deletes a finished Job and its pod if the cache still has it: a settled Backup's
// reconcile sends nothing.
func deleteJob(ctx context.Context, c client.Client, ns, name string) error {
	j := &batchv1.Job{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, j); err != nil || !j.DeletionTimestamp.IsZero() {
		return client.IgnoreNotFound(err)
	}
	return client.IgnoreNotFound(c.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &j.UID}))
}
