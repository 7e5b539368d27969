package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A Restore of a physical backup on a real API server: to a time before the backup completed it
// is refused by name; into a new instance it writes the recovery's Secret (where the
// backup and the source's archive are, the target, the store's credentials) and creates the
// instance marked to recover from the store, and it completes, the Secret gone, once the instance
// is Ready. (The recovery itself is the agent's, tested with real PostgreSQL and on the cluster.)
func TestARestoreOfAPhysicalBackupRecoversANewInstance(t *testing.T) {
	ctx, ns := context.Background(), "pitr"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	c, m := startWithStore(t, ns, cat)
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "gone"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Method: v1alpha1.BackupPhysical}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	completed := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	writePhysicalManifest(t, c, m, b, completed, nil)

	restore := func(name string, target v1alpha1.RestoreTarget, at time.Time) *v1alpha1.Restore {
		rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.RestoreSpec{
			BackupRef: v1alpha1.LocalObjectReference{Name: b.Name}, Target: target, TargetTime: &metav1.Time{Time: at}}}
		if name == "stuck" {
			rs.Spec.Timeout = &metav1.Duration{Duration: 5 * time.Second}
		}
		if err := c.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	until := func(rs *v1alpha1.Restore, phase v1alpha1.BackupPhase, reason, message string) {
		t.Helper()
		waitRestore(t, c, rs, phase, reason, message)
	}
	until(restore("too-early", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "too-early"}}, completed.Add(-time.Hour)),
		v1alpha1.BackupFailed, controllers.ReasonTargetTooEarly, "is before Backup \"base\" completed")
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "too-early"}, &v1alpha1.ServiceInstance{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused restore made an instance: %v", err)
	}

	// A recovery that never finishes (this instance never becomes Ready) ends at spec.timeout,
	// and the instance stays for its logs.
	stuck := restore("stuck", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "stuck"}}, time.Now())
	until(stuck, v1alpha1.BackupFailed, "DeadlineExceeded", `instance "stuck" did not recover within 5s`)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stuck"}, &v1alpha1.ServiceInstance{}); err != nil {
		t.Fatalf("the instance of a restore past its deadline: %v", err)
	}

	// The recovery Secret of an earlier Restore into an instance of the same name (a drill's
	// scratch instance), not yet collected: it must not lend this restore its target.
	isController := true
	stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: workload.RecoverySecretName(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "restored"}}),
		Namespace: ns, OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Restore", Name: stuck.Name,
			UID: stuck.UID, Controller: &isController}}},
		Data: map[string][]byte{workload.RecoveryConfigKey: []byte(`{"backup":"elsewhere","targetTime":"2000-01-01T00:00:00Z"}`)}}
	if err := c.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	target := time.Now().Truncate(time.Second)
	rs := restore("to-now", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "restored"}}, target)
	inst := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, time.Minute, func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "restored"}, inst)
	})
	if inst.Annotations[workload.RecoveryAnnotation] != b.Name {
		t.Fatalf("the new instance's annotations: %v", inst.Annotations)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: workload.RecoverySecretName(inst)}, secret); err != nil {
		t.Fatal(err)
	}
	var cfg backup.RecoveryConfig
	if err := json.Unmarshal(secret.Data[workload.RecoveryConfigKey], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Backup != controllers.Dir(b) || cfg.Dir != "wal/"+ns+"/gone" || cfg.URL != m.URL() || cfg.CredentialsDir != workload.RecoveryMount ||
		cfg.TargetTime != target.UTC().Format(time.RFC3339Nano) || cfg.TargetArchived {
		// (The source is gone: nothing says the archive reaches the target.)
		t.Fatalf("the recovery's configuration: %+v", cfg)
	}
	for k, v := range m.Credentials() {
		if string(secret.Data[k]) != string(v) {
			t.Fatalf("the recovery's Secret lacks the store's %s", k)
		}
	}
	// The instance becomes Ready (its agent promoted at the target): the restore is done.
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	until(rs, v1alpha1.BackupCompleted, "Completed", "recovered from physical backup \"base\" and the archived log to "+target.UTC().Format(time.RFC3339))
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), secret); !apierrors.IsNotFound(err) {
		t.Fatalf("the recovery's Secret after the restore: %v", err)
	}
}

// waitRestore waits for a Restore's phase and the reason and message of its Ready condition.
func waitRestore(t *testing.T, c client.Client, rs *v1alpha1.Restore, phase v1alpha1.BackupPhase, reason, message string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(rs), rs); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(rs.Status.Conditions, "Ready")
		if rs.Status.Phase != phase || cond == nil || cond.Reason != reason || !strings.Contains(cond.Message, message) {
			return fmt.Errorf("restore %s: %s %+v, want %s %s", rs.Name, rs.Status.Phase, cond, phase, reason)
		}
		return nil
	})
}

// A point-in-time Restore checks its target against the source's recoverable window
// (status.recoverableWindow) before it makes anything: before the window it is refused; past its
// end, while the source archives, it waits, and it goes on (the instance is made) once the window
// reaches the target.
func TestAPointInTimeRestoreStaysInsideTheRecoverableWindow(t *testing.T) {
	ctx, ns := context.Background(), "window"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	c, m := startWithStore(t, ns, cat)
	now := time.Now().Truncate(time.Second)
	// The fake engine cannot archive (the instance is Failed for it), and its reconciler keeps the
	// window it does not compute: the test stands in for the engine that would.
	source := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{
		Engine: fakeengine.Name, Version: "1", Backup: &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"},
			Continuous: &v1alpha1.ContinuousArchiving{}}}}
	if err := c.Create(ctx, source); err != nil {
		t.Fatal(err)
	}
	window := func(from, to time.Time) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(source), source); err != nil {
				return err
			}
			w := &v1alpha1.RecoverableWindow{From: metav1.NewTime(from), To: metav1.NewTime(to)}
			if got := source.Status.RecoverableWindow; got != nil && got.From.Equal(&w.From) && got.To.Equal(&w.To) {
				return nil
			}
			source.Status.RecoverableWindow = w
			if err := c.Status().Update(ctx, source); err != nil {
				return err
			}
			return fmt.Errorf("written; reading it back")
		})
	}
	window(now.Add(-50*time.Minute), now.Add(-10*time.Minute))
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Method: v1alpha1.BackupPhysical}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	writePhysicalManifest(t, c, m, b, metav1.NewTime(now.Add(-time.Hour)), nil)
	restore := func(name string, at time.Time) *v1alpha1.Restore {
		rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.RestoreSpec{
			BackupRef: v1alpha1.LocalObjectReference{Name: b.Name}, Target: v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: name}},
			TargetTime: &metav1.Time{Time: at}}}
		if err := c.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	waitRestore(t, c, restore("before", now.Add(-55*time.Minute)), v1alpha1.BackupFailed, controllers.ReasonTargetOutsideWindow,
		"is before the recoverable window: instance \"db\" can be restored from")
	waitRestore(t, c, restore("future", now.Add(time.Hour)), v1alpha1.BackupFailed, controllers.ReasonTargetOutsideWindow, "is in the future")
	later := restore("later", now.Add(-5*time.Minute))
	waitRestore(t, c, later, v1alpha1.BackupPending, controllers.ReasonWaitingForArchive, "waiting for it to reach the target")
	for _, name := range []string{"before", "future", "later"} {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.ServiceInstance{}); !apierrors.IsNotFound(err) {
			t.Fatalf("restore %s made its instance outside the window: %v", name, err)
		}
	}
	// The archive reaches the target: the restore goes on.
	window(now.Add(-50*time.Minute), now)
	testenv.Eventually(t, time.Minute, func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "later"}, &v1alpha1.ServiceInstance{})
	})
	waitRestore(t, c, later, v1alpha1.BackupRunning, controllers.ReasonRunning, "recovers from physical backup")
	// The recovery is told that the archive reaches its target (so an archive whose last
	// transaction is before it is the state at the target).
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: workload.RecoverySecretName(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "later"}})}, secret); err != nil {
		t.Fatal(err)
	}
	var cfg backup.RecoveryConfig
	if err := json.Unmarshal(secret.Data[workload.RecoveryConfigKey], &cfg); err != nil || !cfg.TargetArchived {
		t.Fatalf("the recovery's configuration inside the window: %+v (%v), want the target said to be archived", cfg, err)
	}
}

// writePhysicalManifest completes b as the backup Job and controller would have for a physical
// backup that completed at completed, whose replay starts at base (nil: not said).
func writePhysicalManifest(t *testing.T, c client.Client, m *testenv.MinIO, b *v1alpha1.Backup, completed metav1.Time, base *fwagent.BaseBackupInfo) {
	t.Helper()
	ctx := context.Background()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		b.Status = v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupCompleted, StartTime: &completed, CompletionTime: &completed},
			EngineVersion: "1", Location: controllers.Dir(b), Path: controllers.Dir(b), Store: "minio"}
		return c.Status().Update(ctx, b)
	}); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Version: "1"})
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := backup.Write(ctx, s, controllers.Dir(b), backup.Manifest{Engine: fakeengine.Name, EngineVersion: "1", Namespace: b.Namespace,
		Instance: b.Spec.InstanceRef.Name, Backup: b.Name, Source: spec, Method: backup.MethodPhysical, Base: base}, nil, func(_ context.Context, w io.Writer) error {
		_, err := w.Write([]byte("base"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// archivingFake stands in for the postgres engine (framework/ may not import it): the fake engine
// with an archive whose segments order as PostgreSQL's do on one timeline (the real order is
// postgres's agent.Superseded, tested there).
type archivingFake struct{ fakeengine.Engine }

func (archivingFake) Superseded(segment, start string) bool {
	return len(segment) == 24 && len(start) == 24 && segment < start
}

// Deleting a physical Backup prunes the instance's archive in the store (real MinIO) down to
// what the physical Backups left replay: the segments before the oldest remaining base backup's
// start go, the rest, the history file and another database system's segments stay; deleting
// the last one removes nothing (the next base backup decides).
func TestDeletingAPhysicalBackupPrunesTheArchive(t *testing.T) {
	ctx, ns := context.Background(), "retention"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	c, m := startWithStoreAndEngine(t, ns, cat, archivingFake{fakeengine.New()})
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	archive := func(system string) *backup.SegmentArchive {
		return &backup.SegmentArchive{Store: s, Dir: "wal/" + ns + "/db/" + system}
	}
	segment := func(n int) string { return fmt.Sprintf("0000000100000000%08X", n) }
	for n := 1; n <= 8; n++ {
		for _, system := range []string{"7001", "6999"} {
			if err := archive(system).Put(ctx, segment(n), strings.NewReader(fmt.Sprintf("wal %d", n))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := archive("7001").Put(ctx, "00000002.history", strings.NewReader("1\t0/3000000\tno reason")); err != nil {
		t.Fatal(err)
	}
	physical := func(name string, start int, completed time.Time) *v1alpha1.Backup {
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.BackupSpec{
			InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Method: v1alpha1.BackupPhysical}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, func() error { // deleting it must go through the controller
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil || !slices.Contains(b.Finalizers, controllers.BackupFinalizer) {
				return fmt.Errorf("no finalizer yet: %v %v", b.Finalizers, err)
			}
			return nil
		})
		writePhysicalManifest(t, c, m, b, metav1.NewTime(completed), &fwagent.BaseBackupInfo{System: "7001", StartSegment: segment(start)})
		return b
	}
	now := time.Now().Truncate(time.Second)
	older, newer := physical("older", 3, now.Add(-2*time.Hour)), physical("newer", 6, now.Add(-time.Hour))
	contents := func(system string) string {
		names, err := archive(system).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(names, " ")
	}
	gone := func(b *v1alpha1.Backup) {
		t.Helper()
		if err := c.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); !apierrors.IsNotFound(err) {
				return fmt.Errorf("Backup %s still there: %v", b.Name, err)
			}
			return nil
		})
	}
	all := contents("7001")
	gone(older)
	want := "00000001000000000000000" + "6 000000010000000000000007 000000010000000000000008 00000002.history"
	if got := contents("7001"); got != want {
		t.Fatalf("the archive after the older base backup went (was %s):\n got %s\nwant %s", all, got, want)
	}
	if got := contents("6999"); strings.Count(got, " ")+1 != 8 {
		t.Fatalf("another database system's segments were pruned: %s", got)
	}
	gone(newer)
	if got := contents("7001"); got != want {
		t.Fatalf("the last physical backup went and the archive changed: %s", got)
	}
}

// What a Restore's target may be, on a real API server: one of targetTime and targetLSN, a log
// position as PostgreSQL prints it (the schema); and no target at all for a
// logical backup (a dump restores to when it was taken), refused by name with nothing made.
// targetLSN reaches the new instance's recovery configuration.
func TestARestoreTargetsWhatItsBackupCanReach(t *testing.T) {
	ctx, ns := context.Background(), "targets"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	c, m := startWithStore(t, ns, cat)
	at := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	newInstance := v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "copy"}}
	for _, bad := range []struct {
		spec v1alpha1.RestoreSpec
		want string
	}{
		{v1alpha1.RestoreSpec{Target: newInstance, TargetTime: &at, TargetLSN: "0/3000060"}, "set targetTime or targetLSN, not both"},
		{v1alpha1.RestoreSpec{Target: newInstance, TargetLSN: "3000060"}, "spec.targetLSN"},
	} {
		bad.spec.BackupRef = v1alpha1.LocalObjectReference{Name: "any"}
		err := c.Create(ctx, &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-", Namespace: ns}, Spec: bad.spec})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: want it refused with %q, got %v", bad.spec, bad.want, err)
		}
	}

	dump := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "dump", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}}
	if err := c.Create(ctx, dump); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(dump), dump); err != nil {
			return err
		}
		dump.Status = v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupCompleted, StartTime: &at, CompletionTime: &at}, Store: "minio"}
		return c.Status().Update(ctx, dump)
	})
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "dump-to-a-time", Namespace: ns}, Spec: v1alpha1.RestoreSpec{
		BackupRef: v1alpha1.LocalObjectReference{Name: dump.Name}, Target: newInstance, TargetTime: &at}}
	if err := c.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	waitRestore(t, c, rs, v1alpha1.BackupFailed, controllers.ReasonNotPointInTime, `Backup "dump" is logical (a dump): it restores to the moment it was taken`)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "copy"}, &v1alpha1.ServiceInstance{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused restore made its instance: %v", err)
	}

	base := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Method: v1alpha1.BackupPhysical}}
	if err := c.Create(ctx, base); err != nil {
		t.Fatal(err)
	}
	writePhysicalManifest(t, c, m, base, at, nil)
	rs = &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "to-a-position", Namespace: ns}, Spec: v1alpha1.RestoreSpec{
		BackupRef: v1alpha1.LocalObjectReference{Name: base.Name}, Target: newInstance, TargetLSN: "0/3000060"}}
	if err := c.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	waitRestore(t, c, rs, v1alpha1.BackupRunning, controllers.ReasonRunning, "to log position 0/3000060")
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "copy-recovery"}, secret); err != nil {
		t.Fatal(err)
	}
	var cfg backup.RecoveryConfig
	if err := json.Unmarshal(secret.Data[workload.RecoveryConfigKey], &cfg); err != nil || cfg.TargetLSN != "0/3000060" || cfg.TargetTime != "" {
		t.Fatalf("the recovery's configuration: %+v (%v)", cfg, err)
	}
}
