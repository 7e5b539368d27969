package controllers_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// A Backup waiting for its store, and a Restore waiting for that Backup, move as soon as what they
// wait for happens, not at their next retry (30 s after they last looked): the store turning Ready
// wakes the Backup, the Backup completing wakes the Restore. (CI once saw an imported Backup wait
// a whole retry because the store controller creates it before it writes its own Ready.) The
// retry is an hour here: without the wake both would still be Pending at the end of the wait.
func TestWhatWaitsForAStoreOrABackupMovesWhenItIsThere(t *testing.T) {
	env := testenv.Start(t)
	policy := localMinIO
	policy.ImportNamespaces = []string{"recovery"}
	mgr, err := env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 2, StoreProbeEvery: time.Hour,
		RunRetry: time.Hour, StorePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	m := testenv.StartMinIO(t)
	ctx, c, ns := context.Background(), env.Client, "recovery"

	// A backup another cluster wrote, imported by hand before the store it names exists.
	other, err := store.Open(ctx, m.URL(), "fleet", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const dir = "shop/orders/nightly-20261206-010000"
	if _, err := backup.Write(ctx, other, dir, backup.Manifest{Engine: fakeengine.Name, EngineVersion: "1.0", Namespace: "shop",
		Instance: "orders", Backup: "nightly", Source: []byte(`{"engine":"fake"}`)}, nil, func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "the rows")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "fleet"},
		Import: &v1alpha1.BackupImport{Path: dir}}}
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns}, Spec: v1alpha1.RestoreSpec{
		BackupRef: v1alpha1.LocalObjectReference{Name: b.Name},
		Target:    v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "orders"}}}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: m.Credentials()}, b, rs,
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	reason := func(o client.Object, conds *[]metav1.Condition) string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatal(err)
		}
		if cond := meta.FindStatusCondition(*conds, "Ready"); cond != nil {
			return cond.Reason
		}
		return ""
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := reason(b, &b.Status.Conditions); got != controllers.ReasonStoreNotFound {
			return fmt.Errorf("the Backup waits with reason %q, want %s", got, controllers.ReasonStoreNotFound)
		}
		if got := reason(rs, &rs.Status.Conditions); got != controllers.ReasonBackupNotCompleted {
			return fmt.Errorf("the Restore waits with reason %q, want %s", got, controllers.ReasonBackupNotCompleted)
		}
		return nil
	})

	bs := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
		URL: m.URL(), Prefix: "fleet", CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "creds"}}}
	if err := c.Create(ctx, bs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if reason(b, &b.Status.Conditions); b.Status.Phase != v1alpha1.BackupCompleted {
			return fmt.Errorf("the Backup, its store Ready: %s %+v", b.Status.Phase, b.Status.Conditions)
		}
		if got := reason(rs, &rs.Status.Conditions); got == controllers.ReasonBackupNotCompleted || got == "" {
			return fmt.Errorf("the Restore, its Backup Completed: %s %+v", rs.Status.Phase, rs.Status.Conditions)
		}
		return nil
	})
	t.Logf("the Backup: %s; the Restore went on to: %s %s", b.Status.Phase, rs.Status.Phase,
		meta.FindStatusCondition(rs.Status.Conditions, "Ready").Message)
}
