package certs

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A CA is rotated before it ends, or when asked, in two steps over Request.Overlap, during which
// clients trust both the old and the new CA:
//
//	TrustingNew: a new CA exists; every trust bundle (the published ca.crt, the server's and
//	             the agents' ca.crt, bindings' Secrets) holds both; certificates still come from
//	             the old one. Clients that re-read ca.crt learn the new CA.
//	ServingNew:  the new CA signs; every certificate is reissued from it; the bundles still hold
//	             the old CA, so a peer or client that has not seen a reissued certificate yet is
//	             still trusted.
//
// Then the old CA is dropped. Each step lasts half the overlap.
const (
	RotationTrustingNew = "TrustingNew"
	RotationServingNew  = "ServingNew"
	// CARenewBefore is how long before its end a CA is rotated.
	CARenewBefore = 365 * 24 * time.Hour
	// AnnotationRotateCA on the owner (a ServiceInstance) asks for a rotation: a new value
	// starts one (for example the time, as `kubectl annotate --overwrite ... datafleet.dev/rotate-ca=$(date +%s)`).
	AnnotationRotateCA = "datafleet.dev/rotate-ca"
	// Annotations of the CA Secret: the request it last honoured, and when the rotation moves on.
	annotationRotated  = "datafleet.dev/ca-rotated-for"
	annotationNextStep = "datafleet.dev/ca-rotation-next-step"
	// Keys of the CA Secret during a rotation.
	nextCertKey     = "next.crt"
	nextKeyKey      = "next.key"
	previousCertKey = "previous.crt"
)

// Trust is an instance's CA as it stands: the one that signs, and what clients must trust.
type Trust struct {
	CA *Authority
	// Bundle is every CA certificate clients trust now (PEM): the signing CA first, and during a
	// rotation the other one after it.
	Bundle []byte
	// Rotation is "", RotationTrustingNew or RotationServingNew; NextStep is when it moves on.
	Rotation string
	NextStep time.Time
}

// trustOf reads the CA Secret.
func trustOf(s *corev1.Secret) (*Trust, error) {
	ca, err := ParseAuthority(s.Data[CAKey], s.Data[caKey])
	if err != nil {
		return nil, err
	}
	t := &Trust{CA: ca, Bundle: ca.CertPEM}
	switch {
	case len(s.Data[nextCertKey]) > 0:
		t.Rotation, t.Bundle = RotationTrustingNew, joinPEM(ca.CertPEM, s.Data[nextCertKey])
	case len(s.Data[previousCertKey]) > 0:
		t.Rotation, t.Bundle = RotationServingNew, joinPEM(ca.CertPEM, s.Data[previousCertKey])
	}
	if t.Rotation != "" {
		if t.NextStep, err = time.Parse(time.RFC3339, s.Annotations[annotationNextStep]); err != nil {
			return nil, fmt.Errorf("the CA's rotation has no next step time: %w", err)
		}
	}
	return t, nil
}

// ReadTrust reads an instance's CA as it stands, for callers outside the instance's reconcile.
func ReadTrust(ctx context.Context, c client.Reader, namespace, instance string) (*Trust, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: CAName(instance)}, s); err != nil {
		return nil, fmt.Errorf("the instance's CA: %w", err)
	}
	t, err := trustOf(s)
	if err != nil {
		return nil, fmt.Errorf("the instance's CA: %w", err)
	}
	return t, nil
}

func joinPEM(a, b []byte) []byte {
	return append(append(bytes.TrimRight(bytes.Clone(a), "\n"), '\n'), b...)
}

// EnsureTrust creates the instance's CA once and moves its rotation on when due (see above). A
// Request without an Overlap never rotates (the webhook's own CA).
func EnsureTrust(ctx context.Context, c client.Client, r Request) (*Trust, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: CAName(r.Instance)}, s)
	if apierrors.IsNotFound(err) {
		ca, err := NewAuthority(caName(r), r.Now)
		if err != nil {
			return nil, err
		}
		s = &corev1.Secret{ObjectMeta: r.meta(CAName(r.Instance)), Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{CAKey: ca.CertPEM, caKey: ca.KeyPEM}}
		if r.RotateCA != "" {
			// A request made before the CA existed is honoured by creating it.
			s.Annotations = map[string]string{annotationRotated: r.RotateCA}
		}
		// Another reconcile (or a cache that lagged) may have created it first: that one is the CA.
		if err := c.Create(ctx, s); err != nil {
			return nil, err
		}
		return &Trust{CA: ca, Bundle: ca.CertPEM}, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := trustOf(s)
	if err != nil || r.Overlap <= 0 {
		return t, err
	}
	step := r.Overlap / 2
	data := map[string][]byte{}
	switch {
	case t.Rotation == RotationTrustingNew && !r.Now.Before(t.NextStep):
		data[CAKey], data[caKey], data[previousCertKey] = s.Data[nextCertKey], s.Data[nextKeyKey], s.Data[CAKey]
	case t.Rotation == RotationServingNew && !r.Now.Before(t.NextStep):
		data[CAKey], data[caKey] = s.Data[CAKey], s.Data[caKey]
		step = 0
	case t.Rotation == "" && (r.RotateCA != "" && r.RotateCA != s.Annotations[annotationRotated] ||
		!r.Now.Before(t.CA.Cert.NotAfter.Add(-CARenewBefore))):
		next, err := NewAuthority(caName(r)+" "+r.Now.UTC().Format("2006-01-02T15:04:05Z"), r.Now)
		if err != nil {
			return nil, err
		}
		data[CAKey], data[caKey], data[nextCertKey], data[nextKeyKey] = s.Data[CAKey], s.Data[caKey], next.CertPEM, next.KeyPEM
	default:
		return t, nil
	}
	s = s.DeepCopy()
	s.Data = data
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	if r.RotateCA != "" {
		s.Annotations[annotationRotated] = r.RotateCA
	}
	delete(s.Annotations, annotationNextStep)
	if step > 0 {
		s.Annotations[annotationNextStep] = r.Now.Add(step).UTC().Format(time.RFC3339)
	}
	// Guarded by the resourceVersion read: two reconciles never make two new CAs.
	if err := c.Update(ctx, s); err != nil {
		return nil, err
	}
	return trustOf(s)
}

func caName(r Request) string { return r.Namespace + "/" + r.Instance + " CA" }
