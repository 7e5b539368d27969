package controllers

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
)

// run drives the status of a Backup or a Restore from its Job (v1alpha1.RunStatus).
type run struct {
	st  *v1alpha1.RunStatus
	gen int64
	// retry is when a pending run looks again.
	retry time.Duration
	clock clock.PassiveClock
}

func (r run) pending(reason, msg string) (time.Duration, error) {
	setReady(&r.st.Conditions, r.gen, false, reason, msg)
	return r.retry, nil
}

func (r run) fail(reason, msg string) (time.Duration, error) {
	r.st.Phase, r.st.CompletionTime = v1alpha1.BackupFailed, stamp(r.clock)
	setReady(&r.st.Conditions, r.gen, false, reason, msg)
	return 0, nil
}

// stop reports why the run cannot go on now: a run that waits looks again later, a refused one
// failed.
func (r run) stop(o *outcome) (time.Duration, error) {
	if o.final {
		return r.fail(o.reason, o.message)
	}
	return r.pending(o.reason, o.message)
}

func (r run) running(msg string) {
	r.st.Phase, r.st.StartTime = v1alpha1.BackupRunning, stamp(r.clock)
	r.progress(msg)
}

// progress says what a running run waits for, keeping its start.
func (r run) progress(msg string) {
	setReady(&r.st.Conditions, r.gen, false, ReasonRunning, msg)
}

func (r run) succeed(msg string) {
	r.st.Phase, r.st.CompletionTime = v1alpha1.BackupCompleted, stamp(r.clock)
	setReady(&r.st.Conditions, r.gen, true, job.ReasonCompleted, msg)
}

// finished reports a run that is over. A completed run's Job is deleted only then, once its
// result is in status: a Job gone before that would read as lost. A failed run keeps its Job,
// whose log explains; it goes with its owner.
func (r run) finished(ctx context.Context, c client.Client, ns, jobName string) (bool, error) {
	switch r.st.Phase {
	case v1alpha1.BackupCompleted:
		return true, deleteJob(ctx, c, ns, jobName)
	case v1alpha1.BackupFailed:
		return true, nil
	case "":
		r.st.Phase = v1alpha1.BackupPending
	}
	return false, nil
}

// step follows the run's Job: start makes it when there is none yet, a running run whose Job is
// gone failed (unless gone, when set, says it finished the run itself), and a failed Job fails
// the run. It returns the result of a Job that succeeded. Only the API server (live) says a Job
// is gone: the cache may not hold yet a Job made a moment ago (its Backup's status update can
// arrive first), and a run failed for that was no run lost.
func (r run) step(ctx context.Context, c client.Client, live client.Reader, ns, jobName string, gone func() (bool, error), start func() (time.Duration, error)) (*job.Result, time.Duration, error) {
	j := &batchv1.Job{}
	key := client.ObjectKey{Namespace: ns, Name: jobName}
	err := c.Get(ctx, key, j)
	if apierrors.IsNotFound(err) && r.st.Phase == v1alpha1.BackupRunning {
		if err = live.Get(ctx, key, j); err == nil {
			return nil, 0, nil // there, and not in the cache yet: its events requeue
		}
	}
	switch {
	case apierrors.IsNotFound(err) && r.st.Phase == v1alpha1.BackupRunning:
		if gone != nil {
			if finished, err := gone(); finished || err != nil {
				return nil, 0, err
			}
		}
		d, err := r.fail(ReasonJobLost, "the Job was deleted before it finished")
		return nil, d, err
	case apierrors.IsNotFound(err):
		d, err := start()
		return nil, d, err
	case err != nil:
		return nil, 0, err
	}
	done, res := jobState(ctx, c, j)
	if !done {
		return nil, 0, nil // the Job's changes requeue
	}
	if res.Reason != job.ReasonCompleted {
		d, err := r.fail(res.Reason, res.Message)
		return nil, d, err
	}
	return &res, 0, nil
}
