package certs

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/names"
)

// Keys of the objects Ensure maintains. The server Secret is a kubernetes.io/tls Secret with the
// CA's certificate beside the server's, so an engine mounts one volume.
const (
	CAKey   = "ca.crt"
	CertKey = corev1.TLSCertKey
	KeyKey  = corev1.TLSPrivateKeyKey
	caKey   = "ca.key"
)

// Names of an instance's TLS objects: the CA Secret (certificate and key) and the ConfigMap
// publishing its certificate share a name; the server Secret is <instance>-tls.
func CAName(instance string) string           { return names.Child(instance, "ca", names.MaxDNSLabel) }
func ServerSecretName(instance string) string { return names.Child(instance, "tls", names.MaxDNSLabel) }

// DefaultClusterDomain is the DNS suffix of Services unless the operator is told otherwise.
const DefaultClusterDomain = "cluster.local"

// DNSNames expands names relative to the namespace (Services, or "*.<headless service>" for the
// pods) into the names clients use: short, namespaced, and fully qualified under clusterDomain.
func DNSNames(namespace, clusterDomain string, relative ...string) []string {
	var out []string
	for _, n := range relative {
		out = append(out, n, n+"."+namespace, n+"."+namespace+".svc", n+"."+namespace+".svc."+clusterDomain)
	}
	return out
}

// Request is one instance's TLS material.
type Request struct {
	Namespace string
	Instance  string
	DNSNames  []string
	// Labels and Owner go on every object created, so they are cached and go with the instance.
	Labels map[string]string
	Owner  metav1.OwnerReference
	Now    time.Time
	// Overlap is how long a CA rotation trusts both CAs (see EnsureTrust); zero never rotates.
	Overlap time.Duration
	// RotateCA is the owner's AnnotationRotateCA: a value the CA has not seen starts a rotation.
	RotateCA string
	// MetricsTokenHash is the sha256 (hex) of the fleet's scrape token, written beside the agents'
	// certificate (fwagent.MetricsTokenKey); empty: the agents answer no scrape.
	MetricsTokenHash string
}

// Result says what the server certificate is good for.
type Result struct {
	NotAfter time.Time
	// RenewAt is when Ensure will replace the server certificate; reconcile again then.
	RenewAt time.Time
}

// Ensure keeps the instance's CA (EnsureTrust) and its server certificate (EnsureServer).
func Ensure(ctx context.Context, c client.Client, r Request) (Result, error) {
	t, err := EnsureTrust(ctx, c, r)
	if err != nil {
		return Result{}, fmt.Errorf("CA: %w", err)
	}
	return EnsureServer(ctx, c, r, t)
}

// EnsureServer publishes what clients must trust (the ConfigMap) and issues the server
// certificate, replacing it when it nears expiry, its names change, or the CA or the bundle
// changes. Every write is create-if-absent or guarded by resourceVersion; a settled instance
// costs reads only.
func EnsureServer(ctx context.Context, c client.Client, r Request, t *Trust) (Result, error) {
	if err := publish(ctx, c, r, t); err != nil {
		return Result{}, fmt.Errorf("publishing the CA: %w", err)
	}
	res, err := ensureLeaf(ctx, c, r, t, ServerSecretName(r.Instance), r.DNSNames, nil,
		func() ([]byte, []byte, error) { return t.CA.Issue(r.DNSNames, r.Now) })
	if err != nil {
		return Result{}, fmt.Errorf("server certificate: %w", err)
	}
	return res, nil
}

func (r Request) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: r.Labels, OwnerReferences: []metav1.OwnerReference{r.Owner}}
}

func publish(ctx context.Context, c client.Client, r Request, t *Trust) error {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: CAName(r.Instance)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: r.meta(CAName(r.Instance)), Data: map[string]string{CAKey: string(t.Bundle)}}
		return c.Create(ctx, cm)
	case err != nil:
		return err
	case cm.Data[CAKey] == string(t.Bundle):
		return nil
	}
	cm.Data = map[string]string{CAKey: string(t.Bundle)}
	return c.Update(ctx, cm)
}

// ensureLeaf keeps the kubernetes.io/tls Secret name holding a certificate for dnsNames from t's
// CA, with t's bundle and extra beside it, issuing a new one with issue when it is due.
func ensureLeaf(ctx context.Context, c client.Client, r Request, t *Trust, name string, dnsNames []string, extra map[string][]byte,
	issue func() (certPEM, keyPEM []byte, err error)) (Result, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, s)
	if err != nil && !apierrors.IsNotFound(err) {
		return Result{}, err
	}
	exists := err == nil
	if exists && bytes.Equal(s.Data[CAKey], t.Bundle) {
		if why, notAfter := t.CA.Renewal(s.Data[CertKey], dnsNames, r.Now); why == "" {
			if hasExactly(s.Data, extra) {
				return resultFor(notAfter), nil
			}
			s.Data = withExtra(map[string][]byte{CertKey: s.Data[CertKey], KeyKey: s.Data[KeyKey], CAKey: s.Data[CAKey]}, extra)
			return resultFor(notAfter), c.Update(ctx, s)
		}
	}
	certPEM, keyPEM, err := issue()
	if err != nil {
		return Result{}, err
	}
	data := withExtra(map[string][]byte{CertKey: certPEM, KeyKey: keyPEM, CAKey: t.Bundle}, extra)
	if exists {
		// Guarded by the resourceVersion read above: a concurrent renewal makes this one conflict.
		s.Data = data
		err = c.Update(ctx, s)
	} else {
		err = c.Create(ctx, &corev1.Secret{ObjectMeta: r.meta(name), Type: corev1.SecretTypeTLS, Data: data})
	}
	if err != nil {
		return Result{}, err
	}
	cert, _ := ParseCertificate(certPEM)
	return resultFor(cert.NotAfter), nil
}

// hasExactly reports whether data holds extra's keys and values and no other key beside the
// certificate's.
func hasExactly(data, extra map[string][]byte) bool {
	if len(data) != 3+len(extra) {
		return false
	}
	for k, v := range extra {
		if got, ok := data[k]; !ok || !bytes.Equal(got, v) {
			return false
		}
	}
	return true
}

func withExtra(data, extra map[string][]byte) map[string][]byte {
	maps.Copy(data, extra)
	return data
}

func resultFor(notAfter time.Time) Result {
	return Result{NotAfter: notAfter, RenewAt: notAfter.Add(-RenewBefore)}
}
