package secrets_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
	for range 2 {
		if err := secrets.EnsureGenerated(ctx, c, key, labels, owner("first"), "password", "cookie"); err != nil {
			t.Fatal(err)
		}
	}
	first := read()
	if len(first.Data["password"]) != 32 || len(first.OwnerReferences) != 1 {
		t.Fatalf("generated: %d-byte password, owners %v", len(first.Data["password"]), first.OwnerReferences)
	}
	if err := secrets.OrphanGenerated(ctx, c, "apps", labels, "first"); err != nil {
		t.Fatal(err)
	}
	if s := read(); len(s.OwnerReferences) != 0 {
		t.Fatalf("orphaned, the Secret still has owners %v", s.OwnerReferences)
	}
	if err := secrets.EnsureGenerated(ctx, c, key, labels, owner("second"), "password", "cookie"); err != nil {
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
		err := secrets.EnsureGenerated(ctx, c, k, labels, owner("third"), "password", "cookie")
		if err == nil || !strings.Contains(err.Error(), `key "password" is missing, empty or holds a control character`) {
			t.Errorf("a pre-created Secret with a %s password: %v", name, err)
		}
	}
}
