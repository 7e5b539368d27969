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
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// backingUp is the fake engine with backups, which no Job of these tests ever runs.
type backingUp struct{ fakeengine.Engine }

func (backingUp) BackupEnv(*v1alpha1.ServiceInstance) []corev1.EnvVar { return nil }
func (backingUp) Reach(context.Context, engine.BackupTarget) error    { return nil }
func (backingUp) Dump(context.Context, engine.BackupTarget, io.Writer) error {
	return fmt.Errorf("not run in these tests")
}
func (backingUp) Load(context.Context, engine.BackupTarget, io.Reader) (string, error) {
	return "", fmt.Errorf("not run in these tests")
}

// A store whose encryption key is short or a pattern takes no new backup: the Backup fails with
// WeakKey, saying how to make a key, before any Job exists. A key Secret that does not exist yet
// holds the Backup pending.
func TestAWeakKeyTakesNoNewBackup(t *testing.T) {
	env := testenv.Start(t)
	m := testenv.StartMinIO(t)
	mgr, err := env.ManagerWith([]engine.Engine{backingUp{fakeengine.New()}}, operator.Options{MaxConcurrentReconciles: 2, StorePolicy: localMinIO})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c, ns := context.Background(), env.Client, "keys"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: m.Credentials()},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "weak", Namespace: ns}, Data: map[string][]byte{"key": []byte("0123456789abcdef0123")}},
		&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ store, secret, reason, message string }{
		{"weak", "weak", controllers.ReasonWeakKey, "new backups need at least 32 random bytes (openssl rand -base64 32)"},
		{"keyless", "not-yet", controllers.ReasonKeyMissing, `"not-yet"`},
	} {
		bs := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: s.store, Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
			URL: m.URL(), CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "creds"},
			Encryption: &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: s.secret, Key: "key"}}}}
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: s.store, Namespace: ns}, Spec: v1alpha1.BackupSpec{
			InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: s.store}}}
		if err := c.Create(ctx, bs); err != nil {
			t.Fatal(err)
		}
		// Its probe does not need the key: the store is Ready.
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(bs), bs); err != nil {
				return err
			}
			if cond := meta.FindStatusCondition(bs.Status.Conditions, "Ready"); cond == nil || cond.Status != metav1.ConditionTrue {
				return fmt.Errorf("store %s: %+v", bs.Name, cond)
			}
			return nil
		})
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(b.Status.Conditions, "Ready")
			if cond == nil || cond.Reason != s.reason || !strings.Contains(cond.Message, s.message) {
				return fmt.Errorf("backup %s: %s %+v, want %s saying %q", b.Name, b.Status.Phase, cond, s.reason, s.message)
			}
			return nil
		})
		if s.reason == controllers.ReasonWeakKey && b.Status.Phase != v1alpha1.BackupFailed {
			t.Errorf("backup %s is %s, want Failed", b.Name, b.Status.Phase)
		}
		var jobs batchv1.JobList
		if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 0 {
			t.Errorf("backup %s: %d Jobs (%v), want none", b.Name, len(jobs.Items), err)
		}
	}
}
