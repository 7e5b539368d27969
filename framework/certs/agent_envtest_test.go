package certs_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Every instance's agents get a certificate from the instance's CA that serves the agent API and
// identifies them as clients, renewed like the server's; the CA exists without spec.tls.
func TestEnsureAgentIssuesTheAgentsCertificate(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	req := certs.Request{Namespace: "default", Instance: "ledger",
		Labels: map[string]string{"app.kubernetes.io/instance": "ledger"},
		Owner:  metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "2c1d7c3e-0000-4000-8000-000000000002"},
		Now:    now}
	ensure := func() certs.Result {
		t.Helper()
		trust, err := certs.EnsureTrust(ctx, c, req)
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := certs.EnsureAgent(ctx, c, req, trust)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := ensure()
	secret, ca := &corev1.Secret{}, &corev1.Secret{}
	get := func() {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: certs.AgentSecretName("ledger")}, secret); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: certs.CAName("ledger")}, ca); err != nil {
			t.Fatal(err)
		}
	}
	get()
	if secret.Type != corev1.SecretTypeTLS || string(secret.Data[certs.CAKey]) != string(ca.Data[certs.CAKey]) {
		t.Errorf("agent Secret type %s, or its ca.crt is not the instance's CA", secret.Type)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Data[certs.CAKey])
	leaf, err := certs.ParseCertificate(secret.Data[certs.CertKey])
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: fwagent.ServerName, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("the agents' certificate for %v: %v", usage, err)
		}
	}
	if leaf.Subject.CommonName != fwagent.AgentIdentity {
		t.Errorf("the agents' certificate names %q", leaf.Subject.CommonName)
	}

	// Settled: nothing written.
	rv := secret.ResourceVersion
	req.Now = now.Add(24 * time.Hour)
	ensure()
	get()
	if secret.ResourceVersion != rv {
		t.Error("a settled EnsureAgent wrote")
	}
	// Due: renewed from the same CA.
	req.Now = first.RenewAt.Add(time.Minute)
	ensure()
	get()
	renewed, err := certs.ParseCertificate(secret.Data[certs.CertKey])
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.NotAfter.After(leaf.NotAfter) {
		t.Error("the agents' certificate was not renewed")
	}
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: pool, DNSName: fwagent.ServerName, CurrentTime: req.Now}); err != nil {
		t.Errorf("the renewed certificate: %v", err)
	}

	// The scrape token's hash goes beside the certificate, which stays; a new token replaces it,
	// and none takes it away. Settled, nothing is written.
	cert := string(secret.Data[certs.CertKey])
	for i, hash := range []string{"c0ffee", "c0ffee", "decaf", ""} {
		rv := secret.ResourceVersion
		req.MetricsTokenHash = hash
		ensure()
		get()
		if got, ok := secret.Data[fwagent.MetricsTokenKey]; string(got) != hash || ok != (hash != "") {
			t.Errorf("the scrape token's hash %q, want %q", got, hash)
		}
		if string(secret.Data[certs.CertKey]) != cert {
			t.Error("the certificate changed with the scrape token")
		}
		if written := secret.ResourceVersion != rv; written != (i != 1) {
			t.Errorf("step %d (hash %q): written %v", i, hash, written)
		}
	}
}
