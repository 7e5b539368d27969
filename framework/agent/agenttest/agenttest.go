// Package agenttest gives tests an instance's agent certificates: a new CA, the agents'
// certificate in a directory (as a pod mounts it) and the operator's Dialer, so that tests reach
// real agents over the same mutual TLS as the operator does.
package agenttest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/certs"
)

// Instance is one instance's agent credentials.
type Instance struct {
	CA *certs.Authority
	// Dir holds tls.crt, tls.key and ca.crt, as certs.AgentSecretName mounted in a pod.
	Dir string
	// Operator reaches the agents with the operator's client certificate.
	Operator fwagent.Dialer
	// CertPEM and KeyPEM are the agents' certificate and key.
	CertPEM, KeyPEM []byte
}

// New makes a CA and writes the agents' certificate into a temporary directory.
func New(t testing.TB) *Instance {
	t.Helper()
	now := time.Now()
	ca, err := certs.NewAuthority("agenttest CA", now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueAgent(now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{certs.CertKey: certPEM, certs.KeyKey: keyPEM, certs.CAKey: ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	op, err := certs.OperatorDialer(&certs.Trust{CA: ca, Bundle: ca.CertPEM}, now)
	if err != nil {
		t.Fatal(err)
	}
	return &Instance{CA: ca, Dir: dir, Operator: op, CertPEM: certPEM, KeyPEM: keyPEM}
}

// Listen is where an agent of this instance serves at addr.
func (i *Instance) Listen(addr string) fwagent.Listen {
	return fwagent.Listen{Addr: addr, TLSDir: i.Dir}
}

// At is the agent at addr, reached as the operator.
func (i *Instance) At(addr string) fwagent.Conn { return i.Operator.At(addr) }
