package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// localMinIO is the platform's store policy in these tests: MinIO on loopback, with credentials.
var localMinIO = store.Policy{Endpoints: []string{"127.0.0.1:*"}}

// The store controller on a real API server probes a real MinIO: Ready with the right key, and a
// reason that says what is wrong otherwise. A steady store's reconciles write nothing.
func TestStoreConditions(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 2, StoreProbeEvery: time.Second, StorePolicy: localMinIO})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	m := testenv.StartMinIO(t)
	ctx, c := context.Background(), env.Client
	ns := "stores"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	secret := func(name, secretKey string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: m.Credentials()}
		s.Data["AWS_SECRET_ACCESS_KEY"] = []byte(secretKey)
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	secret("good", m.SecretKey)
	secret("bad", "not-the-secret-key")
	// An empty Secret (its data is nil on the API server) brings no credentials, and does not make
	// the store use the operator's ambient ones, which the policy withholds.
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name, url, secret, reason, message string
	}{
		{"minio", m.URL(), "good", "Reachable", "written, read back and deleted"},
		{"wrong-key", m.URL(), "bad", "ProbeFailed", "write"},
		{"no-secret", m.URL(), "missing", "CredentialsNotFound", `"missing" does not exist`},
		{"empty-secret", "s3://bucket?region=us-east-1", "empty", "OpenFailed", "needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"local", "file:///var/backups", "", "NotShareable", "Jobs of their own"},
		{"ambient", "s3://bucket?region=us-east-1", "", "StoreNotAllowed", "the operator's own cloud identity"},
		{"elsewhere", strings.Replace(m.URL(), "127.0.0.1", "localhost", 1), "good", "StoreNotAllowed", "endpoint localhost:"},
	} {
		bs := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{URL: s.url}}
		if s.secret != "" {
			bs.Spec.CredentialsSecretRef = &v1alpha1.LocalObjectReference{Name: s.secret}
		}
		if err := c.Create(ctx, bs); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(bs), bs); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(bs.Status.Conditions, "Ready")
			if cond == nil || cond.Reason != s.reason || !strings.Contains(cond.Message, s.message) || cond.ObservedGeneration != bs.Generation {
				return fmt.Errorf("%s: condition %+v, want reason %s with %q", s.name, cond, s.reason, s.message)
			}
			if (cond.Status == metav1.ConditionTrue) != (s.reason == "Reachable") {
				return fmt.Errorf("%s: status %s", s.name, cond.Status)
			}
			return nil
		})
		if strings.Contains(bs.Status.Conditions[0].Message, "not-the-secret-key") {
			t.Fatalf("the condition shows the secret key: %s", bs.Status.Conditions[0].Message)
		}
	}
	// Probes repeat every second here; the same outcome (a failure's request ids aside) is not
	// written again.
	mgr.WaitQuiet(t, 30*time.Second)
	before := mgr.Writes.Count()
	time.Sleep(5 * time.Second)
	if n := mgr.Writes.Count() - before; n != 0 {
		t.Fatalf("5 s of probes of settled stores made %d writes", n)
	}
}
