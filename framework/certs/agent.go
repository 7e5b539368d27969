package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// AgentSecretName is the Secret of an instance's agent certificate (kubernetes.io/tls with
// ca.crt), which every pod of the instance mounts at fwagent.TLSVolume.
func AgentSecretName(instance string) string {
	return names.Child(instance, "agent-tls", names.MaxDNSLabel)
}

// EnsureAgent keeps the agents' certificate from the instance's CA (every instance has one,
// whether or not it serves clients over TLS), renewed like the server's and reissued through a
// CA rotation, with the scrape token's hash beside it (r.MetricsTokenHash), and returns the
// operator's Dialer for the instance's agents. r.DNSNames is not
// used.
func EnsureAgent(ctx context.Context, c client.Client, r Request, t *Trust) (Result, fwagent.Dialer, error) {
	var extra map[string][]byte
	if r.MetricsTokenHash != "" {
		extra = map[string][]byte{fwagent.MetricsTokenKey: []byte(r.MetricsTokenHash)}
	}
	res, err := ensureLeaf(ctx, c, r, t, AgentSecretName(r.Instance), []string{fwagent.ServerName}, extra,
		func() ([]byte, []byte, error) { return t.CA.IssueAgent(r.Now) })
	if err != nil {
		return Result{}, fwagent.Dialer{}, fmt.Errorf("agent certificate: %w", err)
	}
	d, err := OperatorDialer(t, r.Now)
	return res, d, err
}

// AgentDialer is the operator's Dialer for an instance's agents, from the CA in its Secret, for
// callers outside the instance's reconcile (bindings). An instance whose CA is not made yet has
// no agents to reach.
func AgentDialer(ctx context.Context, c client.Reader, namespace, instance string, now time.Time) (fwagent.Dialer, error) {
	t, err := ReadTrust(ctx, c, namespace, instance)
	if err != nil {
		return fwagent.Dialer{}, err
	}
	return OperatorDialer(t, now)
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

// OperatorDialer presents the operator's client certificate from t's CA (issued once per CA and
// bundle, and reused until it nears its end) and trusts t's bundle only.
func OperatorDialer(t *Trust, now time.Time) (fwagent.Dialer, error) {
	ca := t.CA
	// The bundle starts with the signing CA, so it names both what is trusted and who signs.
	key := sha256.Sum256(t.Bundle)
	operatorCerts.Lock()
	defer operatorCerts.Unlock()
	if oc, ok := operatorCerts.byCA[key]; ok && now.Before(oc.renewAt) {
		return fwagent.NewDialer(oc.cfg), nil
	}
	certPEM, keyPEM, err := ca.IssueClient(fwagent.OperatorIdentity, operatorCertValidity, now)
	if err != nil {
		return fwagent.Dialer{}, err
	}
	cfg, err := fwagent.ClientTLSFromPEM(certPEM, keyPEM, t.Bundle)
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
