package secrets_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// On a real API server: a generated Secret keeps its values; orphaned, it is adopted by the next
// owner with the same values; one with an empty key or a newline in a value is refused.
func TestGeneratedSecretsAreKeptAdoptedAndChecked(t *testing.T) {
	env := testenv.Start(t)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	owner := func(uid string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "datafleet.dev/v1alpha1", Kind: "ServiceInstance", Name: "mq", UID: types.UID(uid)}
	}
	labels := map[string]string{"app.kubernetes.io/instance": "mq"}
	key := types.NamespacedName{Namespace: "apps", Name: "mq-admin"}
	read := func() *corev1.Secret {
		s := &corev1.Secret{}
		if err := c.Get(ctx, key, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Each call returns what the Secret holds, the first (which creates it) too: the caller
	// needs no read of its own, which a cache may not answer yet.
	for range 2 {
		values, err := secrets.EnsureGenerated(ctx, c, key, labels, owner("first"), "password", "cookie")
		if err != nil {
			t.Fatal(err)
		}
		if s := read(); string(values["password"]) != string(s.Data["password"]) || string(values["cookie"]) != string(s.Data["cookie"]) {
			t.Fatalf("EnsureGenerated returned %d values, not the %d the Secret holds", len(values), len(s.Data))
		}
	}
	first := read()
	if len(first.Data["password"]) != 32 || len(first.OwnerReferences) != 1 {
		t.Fatalf("generated: %d-byte password, owners %v", len(first.Data["password"]), first.OwnerReferences)
	}
	// Through a cache that has not seen the Secret yet (a stand-in: the reconcile right after the
	// one that created it), nothing is overwritten and no values are returned (look again).
	if values, err := secrets.EnsureGenerated(ctx, unseen{c}, key, labels, owner("first"), "password", "cookie"); err != nil || values != nil {
		t.Fatalf("through a cache that has not seen the Secret: %d values, %v; want none and no error", len(values), err)
	}
	if s := read(); string(s.Data["password"]) != string(first.Data["password"]) {
		t.Fatal("the Secret's password changed")
	}
	if err := secrets.OrphanGenerated(ctx, c, "apps", labels, "first"); err != nil {
		t.Fatal(err)
	}
	if s := read(); len(s.OwnerReferences) != 0 {
		t.Fatalf("orphaned, the Secret still has owners %v", s.OwnerReferences)
	}
	if _, err := secrets.EnsureGenerated(ctx, c, key, labels, owner("second"), "password", "cookie"); err != nil {
		t.Fatal(err)
	}
	if s := read(); string(s.Data["password"]) != string(first.Data["password"]) || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "second" {
		t.Fatalf("adopted: same password %v, owners %v", string(s.Data["password"]) == string(first.Data["password"]), s.OwnerReferences)
	}

	for name, data := range map[string]map[string][]byte{
		"empty":   {"password": {}, "cookie": []byte("c")},
		"missing": {"cookie": []byte("c")},
		"newline": {"password": []byte("pw\nmanagement.tcp.port = 1"), "cookie": []byte("c")},
	} {
		k := types.NamespacedName{Namespace: "apps", Name: name}
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name}, Data: data}); err != nil {
			t.Fatal(err)
		}
		_, err := secrets.EnsureGenerated(ctx, c, k, labels, owner("third"), "password", "cookie")
		if err == nil || !strings.Contains(err.Error(), `key "password" is missing, empty or holds a control character`) {
			t.Errorf("a pre-created Secret with a %s password: %v", name, err)
		}
	}
}

// unseen stands in for a manager's cache that has not seen a Secret created a moment ago: it reads
// nothing; writes go to the API server.
type unseen struct{ client.Client }

func (u unseen) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
}
