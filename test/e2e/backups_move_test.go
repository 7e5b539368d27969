//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// movingNamespace is the namespace the platform lets import backups (the chart's
// backupStores.importNamespaces, set at the install): a fixed name, as a platform team's would be.
const movingNamespace = "e2e-moving"

// checkBackupsMove: a backup outlives everything of the cluster that named it. An instance is
// backed up, then the instance and its Backup objects are lost (the Backups without their
// finalizer, as when a cluster's API server is gone: the store keeps the objects). The namespace's
// store, told to import, finds the backup and makes a Backup of it, and a Restore from that Backup
// brings the rows back into a new instance of the same name.
func checkBackupsMove(t *testing.T, minioNamespace string) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: movingNamespace, Labels: restricted}}
	if err := env.c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			env.dump(t, ns.Name)
		}
		_ = env.c.Delete(context.Background(), ns)
	})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store := createStore(t, ns.Name, minioNamespace, "moving", key)
	orders := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns.Name},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete, Backup: &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}}}
	createInstance(t, orders)
	waitInstanceReady(t, orders)
	psql(t, ns.Name, "orders-0", "CREATE DATABASE shop")
	psqlIn(t, ns.Name, "orders-0", "shop", "CREATE TABLE lines (id int PRIMARY KEY); INSERT INTO lines SELECT generate_series(1, 777)")
	before := backupOf(t, ns.Name, "before-the-loss", "orders")

	// The loss: the instance goes, and its Backups vanish without the operator's say.
	if err := env.c.Delete(ctx, orders); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the lost instance", orders)
	lostPath := loseBackup(t, before)

	// The store imports what it holds.
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(store), store); err != nil {
		t.Fatal(err)
	}
	store.Spec.ImportBackups = true
	if err := env.c.Update(ctx, store); err != nil {
		t.Fatal(err)
	}
	imported := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "before-the-loss", Namespace: ns.Name}}
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(imported), imported); err != nil {
			if err := env.c.Get(ctx, client.ObjectKeyFromObject(store), store); err == nil {
				if c := meta.FindStatusCondition(store.Status.Conditions, "Imported"); c != nil {
					return fmt.Errorf("%w (the store says: %s)", err, c.Message)
				}
			}
			return err
		}
		return expect(imported.Status.Phase == v1alpha1.BackupCompleted && imported.Spec.Import != nil && imported.Spec.Import.Path == lostPath,
			"the lost backup is imported from "+lostPath, fmt.Sprintf("%+v %+v", imported.Spec.Import, imported.Status))
	})
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(store), store); err != nil {
		t.Fatal(err)
	}
	t.Logf("BACKUPS: the store imported %s: %s", lostPath, meta.FindStatusCondition(store.Status.Conditions, "Imported").Message)

	restoreOf(t, ns.Name, "after-the-loss", imported.Name, v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "orders"}}, "Completed")
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), orders) })
	if got := psqlIn(t, ns.Name, "orders-0", "shop", "SELECT count(*) || ' ' || max(id) FROM lines"); got != "777 777" {
		t.Fatalf("the instance restored from the imported backup has %q, want 777 rows", got)
	}
	t.Logf("BACKUPS: backed up, lost the instance and its Backup, imported from the store, restored: 777 rows")
}

// loseBackup deletes a Backup as a lost cluster loses it, without the operator's say: without its
// finalizer, so the objects stay in the store. The Backup controller puts its finalizer back
// whenever it finds it missing, and a delete that came after that would have the operator delete
// the objects; so the delete is conditional on the version the test wrote without the finalizer,
// and both steps are tried again when the controller came between them. It returns the Backup's
// directory in the store.
func loseBackup(t *testing.T, b *v1alpha1.Backup) string {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		b.Finalizers = nil
		if err := env.c.Update(ctx, b); err != nil {
			return err
		}
		rv := b.ResourceVersion
		return env.c.Delete(ctx, b, client.Preconditions{ResourceVersion: &rv})
	})
	waitGone(t, "the lost Backup", b)
	return b.Status.Path
}
