package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// markerEngine is a stand-in for an engine's markers (PostgreSQL's are proven with a real server
// in engines/postgres/agent/markers_test.go and on the local cluster): each instance's markers
// with their commit times on a database clock, the test's fake clock.
type markerEngine struct {
	fakeengine.Engine
	clock *clocktesting.FakePassiveClock
	mu    sync.Mutex
	rows  map[string]map[string]time.Time // instance → marker → commit
}

func (m *markerEngine) WriteMarker(_ context.Context, in engine.MarkerInput, id string, before, after time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	if !after.IsZero() && !now.After(after) {
		return fmt.Errorf("marker %s: the database's clock has not passed %s yet", id, after)
	}
	rows := m.rows[in.Instance.Name]
	if rows == nil {
		rows = map[string]time.Time{}
		m.rows[in.Instance.Name] = rows
	}
	if _, ok := rows[id]; !ok {
		rows[id] = now
	}
	if !before.IsZero() && !now.Before(before) {
		delete(rows, id)
		return fmt.Errorf("marker %s committed after %s: removed", id, before)
	}
	return nil
}

func (m *markerEngine) CheckMarkers(_ context.Context, in engine.MarkerInput, present, absent []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wrong []string
	for _, id := range present {
		if _, ok := m.rows[in.Instance.Name][id]; !ok {
			wrong = append(wrong, "marker "+id+" is missing")
		}
	}
	for _, id := range absent {
		if _, ok := m.rows[in.Instance.Name][id]; ok {
			wrong = append(wrong, "marker "+id+" is present")
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s", strings.Join(wrong, "; "))
	}
	return nil
}

// restoreTo stands in for a recovery: the scratch instance holds the source's markers that
// committed at or before the target (all of them with pastTarget, a replay that overshot).
func (m *markerEngine) restoreTo(source, scratch string, target time.Time, pastTarget bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[scratch] = maps.Clone(m.rows[source])
	for id, at := range m.rows[scratch] {
		if at.After(target) && !pastTarget {
			delete(m.rows[scratch], id)
		}
	}
}

// A point-in-time drill on a real API server, the test standing in for the Restore controller
// and the recovery: a marker before the target (by the database's clock), the second only once
// that clock has passed the target, the Restore to the target made only then, the recovery point
// read from the source's window, the drill's backup kept from retention while it runs, and the
// verdict from the restored instance's markers: Passed with both measures, or Failed when the
// replay went past the target (after asking again for five minutes); and a drill whose source
// lost the first marker (restored in place meanwhile) aims again rather than restore to it.
func TestAPointInTimeDrillChecksItsMarkers(t *testing.T) {
	env := testenv.Start(t)
	ctx, c := context.Background(), env.Client
	const ns = "drills"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	clock := clocktesting.NewFakePassiveClock(time.Date(2030, 1, 10, 4, 0, 30, 0, time.UTC))
	me := &markerEngine{Engine: fakeengine.New(), clock: clock, rows: map[string]map[string]time.Time{}}
	src := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{
		Engine: fakeengine.Name, Backup: &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "store"},
			Continuous: &v1alpha1.ContinuousArchiving{}}}}
	if err := c.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"db", "pitr-drill"} { // the agents' CAs
		owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Namespace", Name: ns, UID: "0"} // never collected here
		if _, err := certs.EnsureTrust(ctx, c, certs.Request{Namespace: ns, Instance: name, Now: time.Now(), Owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: "pitr", Namespace: ns}, Spec: v1alpha1.BackupPlanSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: "0 3 * * *", Suspend: true, Method: v1alpha1.BackupPhysical,
		Retention: &v1alpha1.BackupRetention{Count: func() *int32 { n := int32(1); return &n }()}, Drill: &v1alpha1.BackupDrill{Schedule: "0 4 * * *"}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	planBackup(t, c, ns, "base-1", p.Name, clock.Now().Add(-time.Hour))
	r := &controllers.PlanReconciler{Client: c, Recorder: events.NewFakeRecorder(100), Clock: clock,
		Engines: map[string]engine.Engine{fakeengine.Name: me}}
	reconcile := func(at time.Time) *v1alpha1.DrillStatus {
		t.Helper()
		clock.SetTime(at)
		_, _ = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)}) // a marker not written yet is an error, asked again
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		if p.Status.LastDrill == nil {
			t.Fatalf("no drill at %s", at)
		}
		return p.Status.LastDrill
	}
	restoreOf := func(d *v1alpha1.DrillStatus) (*v1alpha1.Restore, error) {
		rs := &v1alpha1.Restore{}
		return rs, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.Restore}, rs)
	}
	// drill runs one drill from its slot to the restore's completion, whose recovery holds the
	// markers up to the target (or past it), and returns its status once it has a result.
	drill := func(slot time.Time, pastTarget bool) *v1alpha1.DrillStatus {
		t.Helper()
		d := reconcile(slot.Add(30 * time.Second))
		target := slot.Add(32 * time.Second)
		before, after := d.Restore+"-before", d.Restore+"-after"
		if d.Result != controllers.DrillRunning || d.TargetTime == nil || !d.TargetTime.Equal(&metav1.Time{Time: target}) {
			t.Fatalf("the drill at %s: %+v, want Running to %s", slot, d, target)
		}
		if at, ok := me.rows["db"][before]; !ok || !at.Before(target) {
			t.Fatalf("the marker before the target: %v %v", at, ok)
		}
		d = reconcile(target) // the database's clock has not passed the target
		if _, err := restoreOf(d); !apierrors.IsNotFound(err) {
			t.Fatalf("the Restore was made before the second marker: %v", err)
		}
		if _, ok := me.rows["db"][after]; ok {
			t.Fatal("the marker after the target was written at the target")
		}
		d = reconcile(target.Add(time.Second))
		rs, err := restoreOf(d)
		if err != nil || rs.Spec.TargetTime == nil || !rs.Spec.TargetTime.Equal(d.TargetTime) || rs.Spec.BackupRef.Name != d.Backup ||
			rs.Spec.Target.NewInstance == nil || rs.Spec.Target.NewInstance.Name != "pitr-drill" {
			t.Fatalf("the drill's Restore: %+v (%v)", rs, err)
		}
		if at, ok := me.rows["db"][after]; !ok || !at.After(target) {
			t.Fatalf("the marker after the target: %v %v", at, ok)
		}
		// The archive reaches the target (the test stands in for the instance reconciler's
		// window), and the drill sees it 10 s after the target: the recovery point, whatever
		// moment past the target the window's end names; a newer backup completes meanwhile.
		src.Status.RecoverableWindow = &v1alpha1.RecoverableWindow{From: metav1.NewTime(slot.Add(-time.Hour)), To: metav1.NewTime(target.Add(8 * time.Second))}
		if err := c.Status().Update(ctx, src); err != nil {
			t.Fatal(err)
		}
		planBackup(t, c, ns, "base-"+slot.Format("0102"), p.Name, target.Add(5*time.Second))
		if d = reconcile(target.Add(10 * time.Second)); d.RecoveryPoint == nil || d.RecoveryPoint.Duration != 10*time.Second {
			t.Fatalf("the recovery point: %+v", d)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.Backup}, &v1alpha1.Backup{}); err != nil {
			t.Fatalf("retention let the running drill's backup %s go: %v", d.Backup, err)
		}
		// The restore: the scratch instance made at the recovery's start, ready 9 s later.
		scratch := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "pitr-drill", Namespace: ns,
			Labels: map[string]string{controllers.DrillLabel: p.Name}}, Spec: src.Spec}
		if err := c.Create(ctx, scratch); err != nil {
			t.Fatal(err)
		}
		me.restoreTo("db", "pitr-drill", target, pastTarget)
		started, done := metav1.NewTime(target.Add(11*time.Second)), metav1.NewTime(target.Add(20*time.Second))
		rs.Status.Phase, rs.Status.StartTime, rs.Status.CompletionTime = v1alpha1.BackupCompleted, &started, &done
		if err := c.Status().Update(ctx, rs); err != nil {
			t.Fatal(err)
		}
		running := p.DeepCopy()
		d = reconcile(target.Add(21 * time.Second))
		if pastTarget {
			if d.Result != controllers.DrillRunning {
				t.Fatalf("a failed check is asked again for a while: %+v", d)
			}
			d = reconcile(done.Add(6 * time.Minute)) // the patience counts from the Restore's completion
		}
		if _, err := restoreOf(d); !apierrors.IsNotFound(err) {
			t.Errorf("the drill's Restore after it finished: %v", err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(scratch), scratch); !apierrors.IsNotFound(err) {
			t.Errorf("the scratch instance after the drill: %v", err)
		}
		// The deletions run the plan again at once, when the cache may still hold it as it was
		// while the drill ran: the drill must not start over (its Restore made again, and with
		// it a scratch instance no drill deletes).
		stale := &controllers.PlanReconciler{Client: staleCache{Client: c, plan: running}, APIReader: c, Recorder: events.NewFakeRecorder(100),
			Clock: clock, Engines: r.Engines}
		_, _ = stale.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		if _, err := restoreOf(d); !apierrors.IsNotFound(err) {
			t.Errorf("a reconcile from a cache that had not seen the drill's end made its Restore again: %v", err)
		}
		return d
	}

	slot := time.Date(2030, 1, 10, 4, 0, 0, 0, time.UTC)
	d := drill(slot, false)
	if d.Result != controllers.DrillPassed || d.RecoveryTime == nil || d.RecoveryTime.Duration != 9*time.Second ||
		!strings.Contains(d.Message, d.Restore+"-before (written just before) present") || !strings.Contains(d.Message, "recovery point 10s, recovery time 9s") {
		t.Fatalf("the drill: %+v, want Passed with its markers and measures", d)
	}
	reconcile(slot.Add(time.Hour)) // retention prunes the drill's backup now that the drill is over
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "base-1"}, &v1alpha1.Backup{}); !apierrors.IsNotFound(err) {
		t.Errorf("base-1 after the drill that restored it: %v", err)
	}

	d = drill(slot.AddDate(0, 0, 1), true)
	if d.Result != controllers.DrillFailed || !strings.Contains(d.Message, "marker "+d.Restore+"-after is present") {
		t.Fatalf("a drill whose restore went past its target: %+v, want Failed naming the marker", d)
	}

	// The source restored in place between the markers (to a point before the first): the drill
	// does not write the second on that other history, it aims again from now.
	slot = slot.AddDate(0, 0, 2)
	d = reconcile(slot.Add(30 * time.Second))
	before, after := d.Restore+"-before", d.Restore+"-after"
	me.mu.Lock()
	delete(me.rows["db"], before)
	me.mu.Unlock()
	d = reconcile(slot.Add(33 * time.Second))
	retarget := slot.Add(35 * time.Second)
	if _, err := restoreOf(d); !apierrors.IsNotFound(err) {
		t.Fatalf("the drill made its Restore although the source lost the marker before the target: %v", err)
	}
	if d.Result != controllers.DrillRunning || d.TargetTime == nil || !d.TargetTime.Equal(&metav1.Time{Time: retarget}) {
		t.Fatalf("a drill whose source lost its first marker: %+v, want Running to %s", d, retarget)
	}
	if at, ok := me.rows["db"][before]; !ok || !at.Before(retarget) {
		t.Fatalf("the first marker written again: %v %v", at, ok)
	}
	if _, ok := me.rows["db"][after]; ok {
		t.Fatal("the second marker was written on the source that lost the first")
	}
	d = reconcile(retarget.Add(time.Second))
	if rs, err := restoreOf(d); err != nil || rs.Spec.TargetTime == nil || !rs.Spec.TargetTime.Equal(&metav1.Time{Time: retarget}) {
		t.Fatalf("the drill's Restore after aiming again: %+v (%v)", rs, err)
	}
}

// planBackup makes a completed physical Backup of the plan.
func planBackup(t *testing.T, c client.Client, ns, name, plan string, at time.Time) {
	t.Helper()
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{controllers.PlanLabel: plan}},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Method: v1alpha1.BackupPhysical}}
	if err := c.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	done := metav1.NewTime(at)
	b.Status.Phase, b.Status.StartTime, b.Status.CompletionTime = v1alpha1.BackupCompleted, &done, &done
	if err := c.Status().Update(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// staleCache answers Gets of the plan with an older copy, as the manager's cache does for a
// moment after the reconciler's own status write (its watch event not arrived yet).
type staleCache struct {
	client.Client
	plan *v1alpha1.BackupPlan
}

func (s staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if p, ok := obj.(*v1alpha1.BackupPlan); ok && key == client.ObjectKeyFromObject(s.plan) {
		s.plan.DeepCopyInto(p)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}
