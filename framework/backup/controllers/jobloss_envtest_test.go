package controllers_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A running Backup whose Job is deleted (by anyone) after the Job wrote the manifest is Completed
// from the manifest: the store says the backup is whole. One whose Job goes before any manifest
// is written failed, JobLost. (A fresh-clone make test saw a plan's backup Job deleted a second
// after it completed and the Backup failed as lost.)
func TestABackupWhoseJobIsDeletedAfterItsManifestIsComplete(t *testing.T) {
	env := testenv.Start(t)
	m := testenv.StartMinIO(t)
	mgr, err := env.ManagerWith([]engine.Engine{backingUp{fakeengine.New()}}, operator.Options{MaxConcurrentReconciles: 2, StorePolicy: localMinIO, AgentImage: "datafleet/operator:test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c, ns := context.Background(), env.Client, "lost"
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name}}
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: m.Credentials()},
		&v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
			URL: m.URL(), CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "creds"}}},
		inst,
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for _, k := range []struct {
		name          string
		manifest      bool
		phase         v1alpha1.BackupPhase
		reason, words string
	}{
		{"written", true, v1alpha1.BackupCompleted, "Completed", "bytes"},
		{"never-written", false, v1alpha1.BackupFailed, "JobLost", "the Job was deleted before it finished"},
	} {
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: ns}, Spec: v1alpha1.BackupSpec{
			InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		j := &batchv1.Job{}
		// (A Backup that found its instance not ready looks again after 30 s.)
		testenv.Eventually(t, 2*time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			if b.Status.Phase != v1alpha1.BackupRunning || b.Status.Path == "" {
				return fmt.Errorf("backup %s: %s %+v", b.Name, b.Status.Phase, b.Status.Conditions)
			}
			return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: k.name + "-backup"}, j)
		})
		if k.manifest { // what the Job does before it ends
			if _, err := backup.Write(ctx, s, b.Status.Path, backup.Manifest{Engine: fakeengine.Name, Namespace: ns, Instance: "db", Backup: b.Name}, nil,
				func(_ context.Context, w io.Writer) error { _, err := io.WriteString(w, "the data"); return err }); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(b.Status.Conditions, "Ready")
			if b.Status.Phase != k.phase || cond == nil || cond.Reason != k.reason || !strings.Contains(cond.Message, k.words) {
				return fmt.Errorf("backup %s after its Job was deleted: %s %+v, want %s (%s)", b.Name, b.Status.Phase, cond, k.phase, k.reason)
			}
			return nil
		})
		t.Logf("%s: %s: %s", b.Name, b.Status.Phase, meta.FindStatusCondition(b.Status.Conditions, "Ready").Message)
	}
}
