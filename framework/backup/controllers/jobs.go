package controllers

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/backup/job"
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

// deleteJob deletes a finished Job and its pod if the cache still has it: a settled Backup's
// reconcile sends nothing.
func deleteJob(ctx context.Context, c client.Client, ns, name string) error {
	j := &batchv1.Job{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, j); err != nil || !j.DeletionTimestamp.IsZero() {
		return client.IgnoreNotFound(err)
	}
	return client.IgnoreNotFound(c.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &j.UID}))
}
