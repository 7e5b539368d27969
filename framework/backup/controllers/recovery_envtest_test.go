package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A Restore of a physical backup on a real API server: in place and to a time before the backup
// completed it is refused by name; into a new instance it writes the recovery's Secret (where the
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
	writePhysicalManifest(t, c, m, b, completed)

	restore := func(name string, target v1alpha1.RestoreTarget, at time.Time) *v1alpha1.Restore {
		rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.RestoreSpec{
			BackupRef: v1alpha1.LocalObjectReference{Name: b.Name}, Target: target, TargetTime: &metav1.Time{Time: at}}}
		if target.InPlace != nil {
			rs.Spec.TargetTime = nil
		}
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
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(rs.Status.Conditions, "Ready")
			if rs.Status.Phase != phase || cond == nil || cond.Reason != reason || !strings.Contains(cond.Message, message) {
				return fmt.Errorf("restore %s: %s %+v, want %s %s", rs.Name, rs.Status.Phase, cond, phase, reason)
			}
			return nil
		})
	}
	until(restore("in-place", v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "gone"}}, time.Time{}),
		v1alpha1.BackupFailed, controllers.ReasonPhysicalInPlace, "it is restored into a new instance")
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
		cfg.TargetTime != target.UTC().Format(time.RFC3339Nano) {
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

// writePhysicalManifest completes b as the backup Job and controller would have for a physical
// backup that completed at completed.
func writePhysicalManifest(t *testing.T, c client.Client, m *testenv.MinIO, b *v1alpha1.Backup, completed metav1.Time) {
	t.Helper()
	ctx := context.Background()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		b.Status = v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupCompleted, StartTime: &completed, CompletionTime: &completed},
			EngineVersion: "1", Location: controllers.Dir(b), Store: "minio"}
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
		Instance: "gone", Backup: b.Name, Source: spec, Method: backup.MethodPhysical}, nil, func(_ context.Context, w io.Writer) error {
		_, err := w.Write([]byte("base"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
