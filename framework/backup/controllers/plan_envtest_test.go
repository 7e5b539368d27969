package controllers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A plan whose schedule never fires (admitted without the webhook, as before it existed) is
// reported InvalidSchedule, and the one plan worker it shares with a good plan is free: the good
// plan is scheduled. Before, `0 0 30 2 *` held its worker in an endless loop.
func TestAPlanThatNeverFiresHoldsNoWorker(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	plan := func(name, schedule string) *v1alpha1.BackupPlan {
		p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: schedule, Suspend: true}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	never, good := plan("never", "0 0 30 2 *"), plan("good", "0 3 * * *")
	for _, k := range []struct {
		p      *v1alpha1.BackupPlan
		reason string
	}{{never, controllers.ReasonInvalidSchedule}, {good, controllers.ReasonSuspended}} {
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(k.p), k.p); err != nil {
				return err
			}
			if ready := meta.FindStatusCondition(k.p.Status.Conditions, "Ready"); ready == nil || ready.Reason != k.reason {
				return testenv.Errorf("plan %s: Ready %+v, want %s", k.p.Name, ready, k.reason)
			}
			return nil
		})
	}
}

// Retention by age reads the reconciler's clock, not the wall clock: on a real API server, the
// same four Backups lose the two older than maxAge at one time, and the third a day later, while
// the newest is always kept.
func TestRetentionByAgeFollowsTheInjectedClock(t *testing.T) {
	env := testenv.Start(t)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "aged"}}); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "aged"},
		Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: "0 3 * * *", Suspend: true,
			Retention: &v1alpha1.BackupRetention{MaxAge: &metav1.Duration{Duration: 24 * time.Hour}}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 10, 3, 0, 0, 0, time.UTC) // far from the wall clock on purpose
	for name, age := range map[string]time.Duration{"b1": 72 * time.Hour, "b2": 48 * time.Hour, "b3": time.Hour, "b4": 0} {
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "aged", Labels: map[string]string{controllers.PlanLabel: p.Name}},
			Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		done := metav1.NewTime(t0.Add(-age))
		b.Status.Phase, b.Status.StartTime, b.Status.CompletionTime = v1alpha1.BackupCompleted, &done, &done
		if err := c.Status().Update(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	clock := clocktesting.NewFakePassiveClock(t0)
	r := &controllers.PlanReconciler{Client: c, Recorder: events.NewFakeRecorder(100), Clock: clock}
	left := func() []string {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)}); err != nil {
			t.Fatal(err)
		}
		list := &v1alpha1.BackupList{}
		if err := c.List(ctx, list, client.InNamespace("aged")); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range list.Items {
			if b.DeletionTimestamp.IsZero() {
				out = append(out, b.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	if got := left(); !slices.Equal(got, []string{"b3", "b4"}) {
		t.Errorf("at t0 the plan kept %v, want [b3 b4]", got)
	}
	clock.SetTime(t0.Add(48 * time.Hour))
	if got := left(); !slices.Equal(got, []string{"b4"}) {
		t.Errorf("two days later the plan kept %v, want [b4] (the newest, whatever its age)", got)
	}
}

// A drill under way when the plan's drill is removed (or the plan suspended with it, as a
// platform team does before maintenance) is followed to its end: its result is recorded and its
// scratch instance and Restore are deleted, not left restoring for nobody.
func TestARemovedDrillStillFinishesTheOneUnderWay(t *testing.T) {
	env := testenv.Start(t)
	ctx, c, ns := context.Background(), env.Client, "drills"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns},
		Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: "0 3 * * *", Suspend: true,
			Drill: &v1alpha1.BackupDrill{Schedule: "* * * * *"}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: ns, Labels: map[string]string{controllers.PlanLabel: p.Name}},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	done := metav1.NewTime(p.CreationTimestamp.Add(time.Second))
	b.Status.Phase, b.Status.StartTime, b.Status.CompletionTime = v1alpha1.BackupCompleted, &done, &done
	if err := c.Status().Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	clock := clocktesting.NewFakePassiveClock(p.CreationTimestamp.Add(90 * time.Second))
	r := &controllers.PlanReconciler{Client: c, Recorder: events.NewFakeRecorder(100), Clock: clock}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)}); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
	}
	reconcile()
	d := p.Status.LastDrill
	if d == nil || d.Result != controllers.DrillRunning {
		t.Fatalf("no drill started: %+v", d)
	}
	// What the Restore controller would have done meanwhile: the scratch instance, the Restore
	// completed.
	scratch := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "nightly-drill", Namespace: ns,
		Labels: map[string]string{controllers.DrillLabel: p.Name}}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name}}
	if err := c.Create(ctx, scratch); err != nil {
		t.Fatal(err)
	}
	rs := &v1alpha1.Restore{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.Restore}, rs); err != nil {
		t.Fatal(err)
	}
	rs.Status.Phase = v1alpha1.BackupCompleted
	if err := c.Status().Update(ctx, rs); err != nil {
		t.Fatal(err)
	}
	p.Spec.Drill = nil
	if err := c.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	clock.SetTime(clock.Now().Add(30 * time.Second))
	reconcile()
	if d := p.Status.LastDrill; d == nil || d.Result != controllers.DrillPassed || d.CompletionTime == nil {
		t.Errorf("the drill under way was not finished: %+v", d)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(rs), rs); err == nil {
		t.Error("the drill's Restore was left behind")
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(scratch), scratch); err == nil && scratch.DeletionTimestamp.IsZero() {
		t.Error("the drill's scratch instance was left behind")
	}
}
