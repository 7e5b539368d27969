package certs_test

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Runs against a real kube-apiserver (envtest): the objects Ensure keeps are what is asserted.
func TestEnsureIssuesPublishesAndRenews(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	names := certs.DNSNames("default", "cluster.local", "orders", "orders-ro", "*.orders-pods")
	req := certs.Request{Namespace: "default", Instance: "orders", DNSNames: names,
		Labels: map[string]string{"app.kubernetes.io/instance": "orders"},
		Owner:  metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "2c1d7c3e-0000-4000-8000-000000000001"},
		Now:    now}

	first, err := certs.Ensure(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(certs.ServerValidity); !first.NotAfter.Equal(want.Truncate(time.Second)) || !first.RenewAt.Equal(first.NotAfter.Add(-certs.RenewBefore)) {
		t.Errorf("result %+v", first)
	}
	ca, cm, srv := read(t, c)
	if cm.Data[certs.CAKey] != string(ca.Data[certs.CAKey]) || string(srv.Data[certs.CAKey]) != cm.Data[certs.CAKey] {
		t.Error("the published CA differs from the CA Secret or from the server Secret's ca.crt")
	}
	leaf := verify(t, srv, cm.Data[certs.CAKey], "orders.default.svc", now)
	for _, n := range []string{"orders-ro.default.svc.cluster.local", "orders-0.orders-pods.default.svc"} {
		if err := leaf.VerifyHostname(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if srv.Type != corev1.SecretTypeTLS || len(srv.OwnerReferences) != 1 || cm.Labels["app.kubernetes.io/instance"] != "orders" {
		t.Errorf("server Secret type %s, owners %v, labels %v", srv.Type, srv.OwnerReferences, cm.Labels)
	}

	// A day later nothing is due: nothing is written.
	req.Now = now.Add(24 * time.Hour)
	if _, err := certs.Ensure(ctx, c, req); err != nil {
		t.Fatal(err)
	}
	ca2, cm2, srv2 := read(t, c)
	if ca2.ResourceVersion != ca.ResourceVersion || cm2.ResourceVersion != cm.ResourceVersion || srv2.ResourceVersion != srv.ResourceVersion {
		t.Error("a settled Ensure wrote")
	}

	// Past the renewal time: a new certificate from the same CA; the CA and what clients trust stay.
	req.Now = first.RenewAt.Add(time.Minute)
	renewed, err := certs.Ensure(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	ca3, cm3, srv3 := read(t, c)
	if ca3.ResourceVersion != ca.ResourceVersion || cm3.ResourceVersion != cm.ResourceVersion {
		t.Error("renewing the server certificate rewrote the CA")
	}
	if string(srv3.Data[certs.CertKey]) == string(srv.Data[certs.CertKey]) || string(srv3.Data[certs.KeyKey]) == string(srv.Data[certs.KeyKey]) {
		t.Error("the server certificate or key was not replaced")
	}
	verify(t, srv3, cm.Data[certs.CAKey], "orders.default.svc", req.Now)
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate ends %s, the first %s", renewed.NotAfter, first.NotAfter)
	}

	// A new Service name: reissued at once.
	req.DNSNames = append(slices.Clone(names), certs.DNSNames("default", "cluster.local", "orders-extra")...)
	if _, err := certs.Ensure(ctx, c, req); err != nil {
		t.Fatal(err)
	}
	_, _, srv4 := read(t, c)
	verify(t, srv4, cm.Data[certs.CAKey], "orders-extra.default.svc", req.Now)
}

func read(t *testing.T, c client.Client) (ca *corev1.Secret, cm *corev1.ConfigMap, srv *corev1.Secret) {
	t.Helper()
	ca, cm, srv = &corev1.Secret{}, &corev1.ConfigMap{}, &corev1.Secret{}
	for _, o := range []struct {
		name string
		obj  client.Object
	}{{certs.CAName("orders"), ca}, {certs.CAName("orders"), cm}, {certs.ServerSecretName("orders"), srv}} {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: o.name}, o.obj); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cm, srv
}

// verify checks the server certificate the way a client with only the published CA would.
func verify(t *testing.T, srv *corev1.Secret, caPEM, host string, at time.Time) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("the published CA is not PEM")
	}
	leaf, err := certs.ParseCertificate(srv.Data[certs.CertKey])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: at}); err != nil {
		t.Errorf("verifying the server certificate for %s: %v", host, err)
	}
	return leaf
}
