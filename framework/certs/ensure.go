package certs

import (
	"bytes"
	"context"
	"fmt"
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
}

// Result says what the server certificate is good for.
type Result struct {
	NotAfter time.Time
	// RenewAt is when Ensure will replace the server certificate; reconcile again then.
	RenewAt time.Time
}

// Ensure creates the instance's CA once, publishes its certificate, and issues the server
// certificate, replacing it when it nears expiry or its names change. Every write is
// create-if-absent or guarded by resourceVersion; a settled instance costs reads only.
func Ensure(ctx context.Context, c client.Client, r Request) (Result, error) {
	ca, err := ensureAuthority(ctx, c, r)
	if err != nil {
		return Result{}, fmt.Errorf("CA: %w", err)
	}
	if err := publish(ctx, c, r, ca); err != nil {
		return Result{}, fmt.Errorf("publishing the CA: %w", err)
	}
	res, err := ensureLeaf(ctx, c, r, ca, ServerSecretName(r.Instance), r.DNSNames,
		func() ([]byte, []byte, error) { return ca.Issue(r.DNSNames, r.Now) })
	if err != nil {
		return Result{}, fmt.Errorf("server certificate: %w", err)
	}
	return res, nil
}

func (r Request) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: r.Labels, OwnerReferences: []metav1.OwnerReference{r.Owner}}
}

func ensureAuthority(ctx context.Context, c client.Client, r Request) (*Authority, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: CAName(r.Instance)}, s)
	if err == nil {
		return ParseAuthority(s.Data[CAKey], s.Data[caKey])
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	ca, err := NewAuthority(r.Namespace+"/"+r.Instance+" CA", r.Now)
	if err != nil {
		return nil, err
	}
	s = &corev1.Secret{ObjectMeta: r.meta(CAName(r.Instance)), Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{CAKey: ca.CertPEM, caKey: ca.KeyPEM}}
	if err := c.Create(ctx, s); err != nil {
		// Another reconcile (or a cache that lagged) created it first: that one is the CA.
		return nil, err
	}
	return ca, nil
}

func publish(ctx context.Context, c client.Client, r Request, ca *Authority) error {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: CAName(r.Instance)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: r.meta(CAName(r.Instance)), Data: map[string]string{CAKey: string(ca.CertPEM)}}
		return c.Create(ctx, cm)
	case err != nil:
		return err
	case cm.Data[CAKey] == string(ca.CertPEM):
		return nil
	}
	cm.Data = map[string]string{CAKey: string(ca.CertPEM)}
	return c.Update(ctx, cm)
}

// ensureLeaf keeps the kubernetes.io/tls Secret name holding a certificate for dnsNames from ca,
// with ca's certificate beside it, issuing a new one with issue when it is due.
func ensureLeaf(ctx context.Context, c client.Client, r Request, ca *Authority, name string, dnsNames []string,
	issue func() (certPEM, keyPEM []byte, err error)) (Result, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, s)
	if err != nil && !apierrors.IsNotFound(err) {
		return Result{}, err
	}
	exists := err == nil
	if exists && bytes.Equal(s.Data[CAKey], ca.CertPEM) {
		if why, notAfter := ca.Renewal(s.Data[CertKey], dnsNames, r.Now); why == "" {
			return resultFor(notAfter), nil
		}
	}
	certPEM, keyPEM, err := issue()
	if err != nil {
		return Result{}, err
	}
	data := map[string][]byte{CertKey: certPEM, KeyKey: keyPEM, CAKey: ca.CertPEM}
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

func resultFor(notAfter time.Time) Result {
	return Result{NotAfter: notAfter, RenewAt: notAfter.Add(-RenewBefore)}
}
