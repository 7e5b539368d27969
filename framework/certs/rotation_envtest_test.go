package certs_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A CA rotation on a real API server: asked for by a new annotation value, it first hands every
// client both CAs while the certificates still come from the old one, then reissues every
// certificate from the new one while both are still trusted, then drops the old one. A client
// that re-reads ca.crt verifies the server at every step; one that kept the first ca.crt does
// until the new CA serves. Nothing is written between steps.
func TestACARotationTrustsBothCAsBeforeAndWhileTheNewOneServes(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	names := certs.DNSNames("default", "cluster.local", "ledger")
	req := certs.Request{Namespace: "default", Instance: "ledger", DNSNames: names,
		Labels:  map[string]string{"app.kubernetes.io/instance": "ledger"},
		Owner:   metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "2c1d7c3e-0000-4000-8000-000000000003"},
		Now:     now,
		Overlap: 2 * time.Hour}
	ensure := func() *certs.Trust {
		t.Helper()
		trust, err := certs.EnsureTrust(ctx, c, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := certs.EnsureServer(ctx, c, req, trust); err != nil {
			t.Fatal(err)
		}
		if _, _, err := certs.EnsureAgent(ctx, c, req, trust); err != nil {
			t.Fatal(err)
		}
		return trust
	}
	published := func() string {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: certs.CAName("ledger")}, cm); err != nil {
			t.Fatal(err)
		}
		return cm.Data[certs.CAKey]
	}
	server := func() *x509.Certificate {
		t.Helper()
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: certs.ServerSecretName("ledger")}, s); err != nil {
			t.Fatal(err)
		}
		if string(s.Data[certs.CAKey]) != published() {
			t.Error("the server Secret's ca.crt differs from the published one")
		}
		leaf, err := certs.ParseCertificate(s.Data[certs.CertKey])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	verifies := func(caPEM string, leaf *x509.Certificate) bool {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(caPEM))
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "ledger.default.svc", CurrentTime: req.Now})
		return err == nil
	}

	ensure()
	pinned := published() // what a client copied before the rotation
	if n := countCerts(pinned); n != 1 {
		t.Fatalf("steady: %d CAs published", n)
	}
	req.RotateCA = "1"
	trust := ensure()
	if trust.Rotation != certs.RotationTrustingNew || !trust.NextStep.Equal(now.Add(time.Hour)) || countCerts(published()) != 2 {
		t.Fatalf("asked: rotation %q until %s, %d CAs published", trust.Rotation, trust.NextStep, countCerts(published()))
	}
	if leaf := server(); !verifies(pinned, leaf) || !verifies(published(), leaf) {
		t.Error("trusting the new CA: the server is not verified by the old CA or the bundle")
	}
	rv := resourceVersions(t, c)
	req.Now = now.Add(30 * time.Minute)
	ensure()
	if got := resourceVersions(t, c); got != rv {
		t.Error("between steps the rotation wrote")
	}

	req.Now = trust.NextStep
	trust = ensure()
	leaf := server()
	if trust.Rotation != certs.RotationServingNew || countCerts(published()) != 2 || !verifies(published(), leaf) {
		t.Fatalf("serving the new CA: rotation %q, %d CAs published, verified by the bundle: %v", trust.Rotation, countCerts(published()), verifies(published(), leaf))
	}
	if verifies(pinned, leaf) {
		t.Error("the reissued certificate still comes from the old CA")
	}

	req.Now = trust.NextStep
	trust = ensure()
	if trust.Rotation != "" || countCerts(published()) != 1 || published() == pinned || !verifies(published(), server()) {
		t.Fatalf("after the rotation: %q, %d CAs published", trust.Rotation, countCerts(published()))
	}
	// The same request again is not a new one.
	req.Now = req.Now.Add(time.Hour)
	if trust = ensure(); trust.Rotation != "" {
		t.Error("a request already honoured rotated again")
	}
	// A year before the CA ends it is rotated unasked.
	req.Now = trust.CA.Cert.NotAfter.Add(-certs.CARenewBefore)
	if trust = ensure(); trust.Rotation != certs.RotationTrustingNew {
		t.Errorf("a CA a year from its end: rotation %q", trust.Rotation)
	}
}

func countCerts(bundle string) int {
	n := 0
	for rest := []byte(bundle); ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return n
		}
	}
}

func resourceVersions(t *testing.T, c client.Client) string {
	t.Helper()
	out := ""
	for _, o := range []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: certs.CAName("ledger")}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: certs.CAName("ledger")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: certs.ServerSecretName("ledger")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: certs.AgentSecretName("ledger")}}} {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: o.GetName()}, o); err != nil {
			t.Fatal(err)
		}
		out += o.GetResourceVersion() + ","
	}
	return out
}
