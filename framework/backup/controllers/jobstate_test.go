package controllers

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
)

// noPods stands in for the API server's pod list: the killed pod said nothing (a real API
// server cannot be started from this package's internal tests: test/testenv imports it).
type noPods struct{ client.Reader }

func (noPods) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// A Job the Job controller stopped at its deadline, whose pod was killed before it could say
// anything, fails its Backup with DeadlineExceeded. A plan's backups end before its next slot.
func TestAJobPastItsDeadlineFailsWithDeadlineExceeded(t *testing.T) {
	ctx := context.Background()
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17"}}
	j := job.Build(job.Input{Name: "b1-backup", Namespace: "shop", Mode: job.ModeDump, Component: job.ComponentBackup, Owner: "b1", Image: "x",
		Engine: "postgres", Instance: inst, Version: "17", Store: &v1alpha1.BackupStore{}, Dir: "shop/orders/b1", Backup: "b1",
		Deadline: timeoutOr(nil, DefaultBackupTimeout)})
	now := metav1.Now()
	j.Status = batchv1.JobStatus{StartTime: &now, Failed: 1, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonDeadlineExceeded, Message: "Job was active longer than specified deadline", LastTransitionTime: now},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonDeadlineExceeded, Message: "Job was active longer than specified deadline", LastTransitionTime: now}}}
	done, res := jobState(ctx, noPods{}, j)
	if !done || res.Reason != job.ReasonDeadlineExceeded {
		t.Errorf("a Job stopped at its deadline: done %v, %+v", done, res)
	}
	if *j.Spec.ActiveDeadlineSeconds != int64((6 * time.Hour).Seconds()) {
		t.Errorf("a Backup without a timeout gets a Job deadline of %ds, want 6h", *j.Spec.ActiveDeadlineSeconds)
	}
	for _, k := range []struct {
		slot, next string
		want       time.Duration
	}{{"03:00", "04:00", 59 * time.Minute}, {"03:00", "03:01", minSlotTimeout}, {"03:00", "03:05", minSlotTimeout}, {"03:00", "03:00", 0}} {
		slot, _ := time.Parse("15:04", k.slot)
		next, _ := time.Parse("15:04", k.next)
		if next.Equal(slot) {
			next = slot.Add(7 * 24 * time.Hour)
			k.want = DefaultBackupTimeout
		}
		if got := slotTimeout(slot, next); got != k.want {
			t.Errorf("a plan's backup at %s with the next slot at %s: timeout %s, want %s", slot, next, got, k.want)
		}
	}
}

// laggingCache stands in for an informer cache that has not seen a Job made a moment ago, and
// oneJob for the API server, which has (or, empty, has not): the internal tests cannot start one.
type laggingCache struct{ client.Client }

func (laggingCache) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(batchv1.Resource("jobs"), key.Name)
}

type oneJob struct {
	client.Reader
	name string
}

func (o oneJob) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	if key.Name == o.name {
		return nil
	}
	return apierrors.NewNotFound(batchv1.Resource("jobs"), key.Name)
}

// A running Backup whose Job the cache does not hold yet is not lost while the API server has the
// Job (a fresh-clone make test failed a plan's backup as JobLost whose Job went on to complete);
// one the API server does not have either is.
func TestAJobTheCacheHasNotSeenIsNotLost(t *testing.T) {
	ctx := context.Background()
	start := func() (time.Duration, error) { t.Fatal("a running run started another Job"); return 0, nil }
	st := &v1alpha1.RunStatus{Phase: v1alpha1.BackupRunning}
	r := run{st: st, gen: 1, retry: time.Second}
	if res, _, err := r.step(ctx, laggingCache{}, oneJob{name: "b1-backup"}, "shop", "b1-backup", nil, start); res != nil || err != nil || st.Phase != v1alpha1.BackupRunning {
		t.Fatalf("a Job the API server has: %v %v, phase %s", res, err, st.Phase)
	}
	if _, _, err := r.step(ctx, laggingCache{}, oneJob{name: "another"}, "shop", "b1-backup", nil, start); err != nil || st.Phase != v1alpha1.BackupFailed ||
		st.Conditions[0].Reason != ReasonJobLost {
		t.Fatalf("a Job the API server does not have: %v, %s %+v", err, st.Phase, st.Conditions)
	}
}
