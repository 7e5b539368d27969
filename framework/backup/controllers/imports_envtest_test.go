package controllers_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Backups another cluster wrote to a store (namespace shop, instance orders) become Backups of
// a namespace the platform allows, and only there: one whose manifest was copied into another
// instance's directory, and one written with another key, do not. An imported Backup is
// Completed without a Job, its deletion leaves the store's objects, and the next look imports it
// again under the same name. A hand-made import outside the allowed namespaces fails, and the CRD
// refuses paths that are not namespace/instance/backup.
func TestBackupsAreImportedFromAStoreIntoAnAllowedNamespace(t *testing.T) {
	env := testenv.Start(t)
	policy := localMinIO
	policy.ImportNamespaces = []string{"recovery"}
	mgr, err := env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 2, StoreProbeEvery: time.Second, StorePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	m := testenv.StartMinIO(t)
	ctx, c := context.Background(), env.Client
	key := []byte("0123456789abcdef0123456789abcdef")

	// The other cluster's writes.
	other, err := store.Open(ctx, m.URL(), "fleet", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	write := func(dir string, k []byte) backup.Manifest {
		t.Helper()
		parts := strings.Split(dir, "/")
		man, err := backup.Write(ctx, other, dir, backup.Manifest{Engine: fakeengine.Name, EngineVersion: "1.0", Namespace: parts[0],
			Instance: parts[1], Backup: "nightly", Source: []byte(`{"engine":"fake"}`)}, k, func(ctx context.Context, w io.Writer) error {
			a := archive.NewWriter(w)
			pw, _ := a.Create("data")
			if _, err := pw.Write([]byte("the rows")); err != nil {
				return err
			}
			return a.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
		return man
	}
	good := write("shop/orders/nightly-20261206-010000", key)
	write("shop/orders/nightly-20261205-010000", []byte("another key, another cluster...."))
	if err := other.Bucket.Copy(ctx, other.Key("shop/payments/nightly-20261206-010000", backup.ManifestName),
		other.Key("shop/orders/nightly-20261206-010000", backup.ManifestName), nil); err != nil {
		t.Fatal(err)
	}
	if err := other.Bucket.WriteAll(ctx, other.Key("wal/shop/orders/7000000000000000000/000000010000000000000001"), []byte("segment"), nil); err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{"recovery", "tenant"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: m.Credentials()},
			{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: ns}, Data: map[string][]byte{"key": key}},
		} {
			if err := c.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		bs := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
			URL: m.URL(), Prefix: "fleet", CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "creds"}, ImportBackups: true,
			Encryption: &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: "key", Key: "key"}}}}
		if err := c.Create(ctx, bs); err != nil {
			t.Fatal(err)
		}
	}
	imported := func(ns string) *metav1.Condition {
		bs := &v1alpha1.BackupStore{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, bs); err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(bs.Status.Conditions, "Imported")
	}
	b := &v1alpha1.Backup{}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: "recovery", Name: "nightly"}, b); err != nil {
			return err
		}
		if b.Status.Phase != v1alpha1.BackupCompleted {
			return fmt.Errorf("the imported Backup: %+v", b.Status)
		}
		cond := imported("recovery")
		if cond == nil || !strings.Contains(cond.Message, "the store holds 3 backups; 1 Backups of this namespace were imported from it; 2 not imported") {
			return fmt.Errorf("the store's Imported condition: %+v", cond)
		}
		return nil
	})
	if b.Spec.Import == nil || b.Spec.Import.Path != "shop/orders/nightly-20261206-010000" || b.Spec.InstanceRef.Name != "orders" ||
		b.Status.Path != b.Spec.Import.Path || b.Status.SizeBytes != good.Size || b.Status.SHA256 != good.SHA256 || !b.Status.Encrypted ||
		b.Status.EngineVersion != "1.0" || b.Status.Store != "fleet" || !b.Status.StartTime.Time.Equal(good.Started.Truncate(time.Second)) {
		t.Fatalf("the imported Backup: %+v %+v", b.Spec, b.Status)
	}
	var list v1alpha1.BackupList
	if err := c.List(ctx, &list, client.InNamespace("recovery")); err != nil || len(list.Items) != 1 {
		t.Fatalf("Backups in recovery: %d, %v; want only the one that authenticates where it is", len(list.Items), err)
	}
	t.Logf("imported: %s; the store says: %s", meta.FindStatusCondition(b.Status.Conditions, "Ready").Message, imported("recovery").Message)

	// Not in a namespace the platform did not list: neither by the store nor by hand.
	if cond := imported("tenant"); cond == nil || cond.Reason != "ImportNotAllowed" || !strings.Contains(cond.Message, "backupStores.importNamespaces") {
		t.Fatalf("the tenant's store: %+v", cond)
	}
	byHand := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: "tenant"}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "fleet"},
		Import: &v1alpha1.BackupImport{Path: "shop/orders/nightly-20261206-010000"}}}
	if err := c.Create(ctx, byHand); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(byHand), byHand); err != nil {
			return err
		}
		if r := meta.FindStatusCondition(byHand.Status.Conditions, "Ready"); byHand.Status.Phase != v1alpha1.BackupFailed || r == nil || r.Reason != "ImportNotAllowed" {
			return fmt.Errorf("a hand-made import in tenant: %s %+v", byHand.Status.Phase, r)
		}
		return nil
	})
	// In the allowed namespace, a hand-made import must say which instance the backup is of.
	wrongInstance := byHand.DeepCopy()
	wrongInstance.ObjectMeta = metav1.ObjectMeta{Name: "wrong-instance", Namespace: "recovery"}
	wrongInstance.Spec.InstanceRef.Name = "payments"
	wrongInstance.Status = v1alpha1.BackupStatus{}
	if err := c.Create(ctx, wrongInstance); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(wrongInstance), wrongInstance); err != nil {
			return err
		}
		if r := meta.FindStatusCondition(wrongInstance.Status.Conditions, "Ready"); wrongInstance.Status.Phase != v1alpha1.BackupFailed ||
			r == nil || r.Reason != "ManifestMismatch" || !strings.Contains(r.Message, `spec.instanceRef names "payments"`) {
			return fmt.Errorf("an import naming another instance: %s %+v", wrongInstance.Status.Phase, r)
		}
		return nil
	})
	if err := c.Delete(ctx, wrongInstance); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &list, client.InNamespace("tenant")); err != nil || len(list.Items) != 1 {
		t.Fatalf("Backups in tenant: %d, %v; want the hand-made one alone", len(list.Items), err)
	}

	for path, want := range map[string]string{
		"../orders/nightly":            "spec.import.path",
		"shop/orders/nightly/../other": "spec.import.path",
	} {
		bad := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "recovery"}, Spec: v1alpha1.BackupSpec{
			InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "fleet"},
			Import: &v1alpha1.BackupImport{Path: path}}}
		if err := c.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a Backup importing %q: %v, want an error naming %q", path, err, want)
		}
	}
	noStore := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "recovery"}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, Import: &v1alpha1.BackupImport{Path: "shop/orders/nightly-1"}}}
	if err := c.Create(ctx, noStore); err == nil || !strings.Contains(err.Error(), "set spec.storeRef") {
		t.Errorf("an import without a store: %v", err)
	}

	// Deleting the imported Backup leaves the other cluster's backup whole; the next look
	// imports it again, under the same name.
	uid := b.UID
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: "recovery", Name: "nightly"}, b); err != nil {
			return err
		}
		if b.UID == uid || b.Status.Phase != v1alpha1.BackupCompleted {
			return fmt.Errorf("not imported again yet: %s %s", b.UID, b.Status.Phase)
		}
		return nil
	})
	if err := backup.Verify(ctx, other, "shop/orders/nightly-20261206-010000", good, key); err != nil {
		t.Fatalf("the other cluster's backup after its imported Backup was deleted: %v", err)
	}

	// Settled: the store's looks write nothing.
	bs := &v1alpha1.BackupStore{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "recovery", Name: "fleet"}, bs); err != nil {
		t.Fatal(err)
	}
	rv := bs.ResourceVersion
	time.Sleep(3 * time.Second)
	if err := c.Get(ctx, client.ObjectKeyFromObject(bs), bs); err != nil || bs.ResourceVersion != rv {
		t.Fatalf("a settled store's status was written: %s -> %s (%v)", rv, bs.ResourceVersion, err)
	}
}
