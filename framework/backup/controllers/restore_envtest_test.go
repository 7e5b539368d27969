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

	"gocloud.dev/blob"
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
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A restore into a new instance on another version follows the catalog's upgrade paths: without
// one it fails with NoUpgradePath before any instance is created; with one (blue/green) the new
// instance is created on the target version.
func TestRestoreToAnotherVersionFollowsTheCatalog(t *testing.T) {
	ctx, ns := context.Background(), "restores"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1"}, {Version: "2", Image: "fake:2", Default: true}, {Version: "3", Image: "fake:3"}}}}
	c, m := startWithStore(t, ns, cat)
	b := completedBackup(t, c, m, ns, v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Version: "1"})

	rs := restoreUntil(t, c, b, "to-3", "3", controllers.ReasonNoUpgradePath)
	if cond := meta.FindStatusCondition(rs.Status.Conditions, "Ready"); rs.Status.Phase != v1alpha1.BackupFailed ||
		!strings.Contains(cond.Message, "no upgrade path 1 -> 3; 1 may move in place to: none") {
		t.Errorf("restore into 3 without a path: %s %+v", rs.Status.Phase, cond)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-3"}, &v1alpha1.ServiceInstance{}); !apierrors.IsNotFound(err) {
		t.Errorf("an instance was created for a refused restore: %v", err)
	}

	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cat), cat); err != nil {
			return err
		}
		cat.Spec.Versions[0].Upgrades = []v1alpha1.UpgradePath{{To: "3", Method: v1alpha1.UpgradeBlueGreen}}
		return c.Update(ctx, cat)
	}); err != nil {
		t.Fatal(err)
	}
	// The fake engine has no backups: the restore stops there, after creating the instance.
	restoreUntil(t, c, b, "to-3-again", "3", controllers.ReasonEngineNotEnabled)
	inst := &v1alpha1.ServiceInstance{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-3-again"}, inst); err != nil || inst.Spec.Version != "3" {
		t.Errorf("the new instance: %v, version %q, want 3", err, inst.Spec.Version)
	}
}

// startWithStore runs the manager with the fake engine on a real API server, and a namespace with
// the catalog and a BackupStore on a real MinIO.
func startWithStore(t *testing.T, ns string, cat *v1alpha1.VersionCatalog) (client.Client, *testenv.MinIO) {
	t.Helper()
	return startWithStoreAndEngine(t, ns, cat, fakeengine.New())
}

// startWithStoreAndEngine is startWithStore with another engine than the fake one.
func startWithStoreAndEngine(t *testing.T, ns string, cat *v1alpha1.VersionCatalog, e engine.Engine) (client.Client, *testenv.MinIO) {
	t.Helper()
	env := testenv.Start(t)
	m := testenv.StartMinIO(t)
	mgr, err := env.ManagerWith([]engine.Engine{e}, operator.Options{MaxConcurrentReconciles: 2, StorePolicy: localMinIO})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop) // before MinIO and the API server stop
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, cat,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: m.Credentials()},
		&v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns},
			Spec: v1alpha1.BackupStoreSpec{URL: m.URL(), CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "creds"}}},
	} {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	return env.Client, m
}

// restoreUntil creates a Restore of b into a new instance of the Restore's name and waits for its
// Ready condition's reason.
func restoreUntil(t *testing.T, c client.Client, b *v1alpha1.Backup, name, version, reason string) *v1alpha1.Restore {
	t.Helper()
	ctx := context.Background()
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace}, Spec: v1alpha1.RestoreSpec{
		BackupRef: v1alpha1.LocalObjectReference{Name: b.Name},
		Target:    v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: name, Version: version}}}}
	if err := c.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(rs.Status.Conditions, "Ready"); cond == nil || cond.Reason != reason {
			return fmt.Errorf("restore %s: %s %+v, want %s", name, rs.Status.Phase, cond, reason)
		}
		return nil
	})
	return rs
}

// completedBackup writes a backup artefact of a fake instance with spec into MinIO and a Backup
// whose status says it completed, as the backup Job and controller would leave them.
func completedBackup(t *testing.T, c client.Client, m *testenv.MinIO, ns string, spec v1alpha1.ServiceInstanceSpec) *v1alpha1.Backup {
	t.Helper()
	return completedBackupNamed(t, c, m, ns, "b", spec, &v1alpha1.LocalObjectReference{Name: "minio"})
}

// completedBackupNamed is completedBackup with the Backup's name and spec.storeRef given; its
// status records the store it was written to (minio), as the backup controller does.
func completedBackupNamed(t *testing.T, c client.Client, m *testenv.MinIO, ns, name string, spec v1alpha1.ServiceInstanceSpec,
	storeRef *v1alpha1.LocalObjectReference) *v1alpha1.Backup {
	t.Helper()
	ctx := context.Background()
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "gone"}, StoreRef: storeRef}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	source, _ := json.Marshal(spec)
	man, err := backup.Write(ctx, s, controllers.Dir(b), backup.Manifest{Engine: spec.Engine, EngineVersion: spec.Version, Namespace: ns,
		Instance: "gone", Backup: b.Name, Source: source}, nil, func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "fake data")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		now := metav1.Now()
		b.Status = v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupCompleted, StartTime: &now, CompletionTime: &now}, EngineVersion: spec.Version,
			SizeBytes: man.Size, SHA256: man.SHA256, Location: controllers.Dir(b), Path: controllers.Dir(b), Store: "minio"}
		return c.Status().Update(ctx, b)
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// A Backup that named no store (it used its instance's default) is restored and deleted, objects
// included, after its instance is gone: the store it was written to is in its status. Before,
// the restore waited for ever (NoStore) and the deletion left the objects in the bucket.
func TestABackupOutlivesItsInstance(t *testing.T) {
	ctx, ns := context.Background(), "outlived"
	c, m := startWithStore(t, ns, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}})
	b := completedBackupNamed(t, c, m, ns, "by-default", v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Version: "1"}, nil)
	// The fake engine has no backups: the restore stops there, after its store was found and the
	// instance created from the manifest.
	restoreUntil(t, c, b, "back", "", controllers.ReasonEngineNotEnabled)
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := c.Delete(ctx, &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "back", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Backup is still there (%v): %+v", err, b.Status.Conditions)
		}
		if ok, err := s.Bucket.Exists(ctx, s.Key(controllers.Dir(b), backup.ManifestName)); ok || err != nil {
			return fmt.Errorf("the backup's manifest is still in the store (%v)", err)
		}
		return nil
	})
}

// A Backup deleted while a Restore still needs it (a plan pruned it, or someone deleted it, in
// the middle of a recovery) keeps its objects until that Restore has finished or is deleted; a
// finished Restore does not hold it.
func TestBackupStaysWhileARestoreNeedsIt(t *testing.T) {
	ctx, ns := context.Background(), "kept"
	c, m := startWithStore(t, ns, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}, {Version: "2", Image: "fake:2"}}}})
	b := completedBackup(t, c, m, ns, v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Version: "1"})
	s, err := store.Open(ctx, m.URL(), "", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objects := func() int {
		n := 0
		it := s.Bucket.List(&blob.ListOptions{Prefix: controllers.Dir(b) + "/"})
		for {
			if _, err := it.Next(ctx); err != nil {
				return n
			}
			n++
		}
	}

	// One restore has failed (no path 1 -> 2); the other waits (the fake engine has no backups).
	restoreUntil(t, c, b, "finished", "2", controllers.ReasonNoUpgradePath)
	restoreUntil(t, c, b, "waiting", "", controllers.ReasonEngineNotEnabled)
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		if !slices.Contains(b.Finalizers, controllers.BackupFinalizer) {
			return fmt.Errorf("no finalizer yet")
		}
		return nil
	})

	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(b.Status.Conditions, "Ready")
		if cond == nil || cond.Reason != controllers.ReasonRestoreInProgress {
			return fmt.Errorf("the deleted backup: %+v", cond)
		}
		if want := "deleted once Restore waiting, which reads this backup, has finished or is deleted"; cond.Message != want {
			return fmt.Errorf("the deleted backup says %q, want %q", cond.Message, want)
		}
		return nil
	})
	if _, err := backup.ReadManifest(ctx, s, controllers.Dir(b)); err != nil {
		t.Fatalf("the manifest of a backup a restore needs: %v", err)
	}
	if n := objects(); n != 2 {
		t.Fatalf("the backup a restore needs has %d objects, want its data and manifest", n)
	}

	if err := c.Delete(ctx, &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "waiting", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the backup is still there (%v)", err)
		}
		return nil
	})
	if n := objects(); n != 0 {
		t.Fatalf("the deleted backup left %d objects", n)
	}
}
