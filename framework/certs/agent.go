package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// AgentSecretName is the Secret of an instance's agent certificate (kubernetes.io/tls with
// ca.crt), which every pod of the instance mounts at fwagent.TLSVolume.
func AgentSecretName(instance string) string {
	return names.Child(instance, "agent-tls", names.MaxDNSLabel)
}

// EnsureAgent keeps every instance's CA (whether or not it serves clients over TLS) and the
// agents' certificate, renewed like the server's, and returns the operator's Dialer for the
// instance's agents. r.DNSNames is not used.
func EnsureAgent(ctx context.Context, c client.Client, r Request) (Result, fwagent.Dialer, error) {
	ca, err := ensureAuthority(ctx, c, r)
	if err != nil {
		return Result{}, fwagent.Dialer{}, fmt.Errorf("CA: %w", err)
	}
	res, err := ensureLeaf(ctx, c, r, ca, AgentSecretName(r.Instance), []string{fwagent.ServerName},
		func() ([]byte, []byte, error) { return ca.IssueAgent(r.Now) })
	if err != nil {
		return Result{}, fwagent.Dialer{}, fmt.Errorf("agent certificate: %w", err)
	}
	d, err := OperatorDialer(ca, r.Now)
	return res, d, err
}

// AgentDialer is the operator's Dialer for an instance's agents, from the CA in its Secret, for
// callers outside the instance's reconcile (bindings). An instance whose CA is not made yet has
// no agents to reach.
func AgentDialer(ctx context.Context, c client.Reader, namespace, instance string, now time.Time) (fwagent.Dialer, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: CAName(instance)}, s); err != nil {
		return fwagent.Dialer{}, fmt.Errorf("the instance's CA: %w", err)
	}
	ca, err := ParseAuthority(s.Data[CAKey], s.Data[caKey])
	if err != nil {
		return fwagent.Dialer{}, fmt.Errorf("the instance's CA: %w", err)
	}
	return OperatorDialer(ca, now)
}

// The operator's client certificates are issued in memory, one per instance CA, and never
// stored: only the operator holds them. They are short-lived and reissued a day before they end.
const (
	operatorCertValidity = 7 * 24 * time.Hour
	operatorCertRenew    = 24 * time.Hour
)

type operatorCert struct {
	cfg      *tls.Config
	renewAt  time.Time
	notAfter time.Time
}

var operatorCerts = struct {
	sync.Mutex
	byCA map[[sha256.Size]byte]operatorCert
}{byCA: map[[sha256.Size]byte]operatorCert{}}

// OperatorDialer presents the operator's client certificate from ca (issued once per CA and
// reused until it nears its end) and trusts only ca.
func OperatorDialer(ca *Authority, now time.Time) (fwagent.Dialer, error) {
	key := sha256.Sum256(ca.CertPEM)
	operatorCerts.Lock()
	defer operatorCerts.Unlock()
	if oc, ok := operatorCerts.byCA[key]; ok && now.Before(oc.renewAt) {
		return fwagent.NewDialer(oc.cfg), nil
	}
	certPEM, keyPEM, err := ca.IssueClient(fwagent.OperatorIdentity, operatorCertValidity, now)
	if err != nil {
		return fwagent.Dialer{}, err
	}
	cfg, err := fwagent.ClientTLSFromPEM(certPEM, keyPEM, ca.CertPEM)
	if err != nil {
		return fwagent.Dialer{}, err
	}
	// Certificates of instances that are gone end within a week; they are dropped then.
	for k, oc := range operatorCerts.byCA {
		if !now.Before(oc.notAfter) {
			delete(operatorCerts.byCA, k)
		}
	}
	operatorCerts.byCA[key] = operatorCert{cfg: cfg, renewAt: now.Add(operatorCertValidity - operatorCertRenew), notAfter: now.Add(operatorCertValidity)}
	return fwagent.NewDialer(cfg), nil
}
