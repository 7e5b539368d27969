package operator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The scrape token is made once, at random, and kept: a second operator (or a restart) gets the
// same hash, which is the hash of what the Secret holds, as Prometheus reads it (trimmed). The
// manager's ServiceAccount owns it. A token an admin set too short is refused.
func TestTheScrapeTokenIsMadeOnceAndKept(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "manager"}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "ServiceAccount", Name: sa.Name, UID: sa.UID}
	first, err := operator.ScrapeToken(ctx, env.Client, "default", "scrape-token", owner)
	if err != nil {
		t.Fatal(err)
	}
	again, err := operator.ScrapeToken(ctx, env.Client, "default", "scrape-token", owner)
	if err != nil || again != first {
		t.Fatalf("a second read gave %q (%v), the first %q", again, err, first)
	}
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "scrape-token"}, s); err != nil {
		t.Fatal(err)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != sa.UID {
		t.Errorf("the Secret's owners %+v, want the manager's ServiceAccount (so that uninstalling removes it)", s.OwnerReferences)
	}
	token := s.Data[operator.ScrapeTokenKey]
	if sum := sha256.Sum256(token); hex.EncodeToString(sum[:]) != first || len(token) < 32 {
		t.Fatalf("the hash is not the token's (%d bytes)", len(token))
	}
	s.Data[operator.ScrapeTokenKey] = append(bytes.Clone(token), '\n')
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if trimmed, err := operator.ScrapeToken(ctx, env.Client, "default", "scrape-token", owner); err != nil || trimmed != first {
		t.Fatalf("a token with a trailing newline hashes to %q (%v), want %q", trimmed, err, first)
	}
	s.Data[operator.ScrapeTokenKey] = []byte("short")
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.ScrapeToken(ctx, env.Client, "default", "scrape-token", owner); err == nil {
		t.Fatal("a 5-byte token was taken")
	}
}
