package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// The agent API is mutual TLS within one instance: the instance's CA (framework/certs) signs the
// agents' certificate (the Secret every pod mounts at TLSVolume, also presented by the agents to
// each other and by the instance's backup Jobs) and the operator's own client certificate, which
// it issues itself in memory. An agent answers /status, /action and /stream only to a client
// whose certificate chains to its instance's CA for client use and names one of ClientNames; the
// kubelet's probes (/healthz, /readyz) need no certificate.
const (
	// ServerName is the name in every agent certificate, which clients verify: the operator dials
	// pod IPs, and a certificate that chains to the instance's own CA and carries this name is one
	// of that instance's agents. The database's server certificate, from the same CA, lacks it.
	ServerName = "agent.datafleet.internal"
	// AgentIdentity is the common name of the agents' certificate, OperatorIdentity the
	// operator's.
	AgentIdentity    = "datafleet-agent"
	OperatorIdentity = "datafleet-operator"
	// TLSVolume names the volume (and pod spec entry) of the agents' certificate. A pod without it
	// predates mutual TLS: its agent serves plain HTTP and is only read (see Dialer.Pod).
	TLSVolume = "agent-tls"
	// FlagTLSDir is the agent's flag naming the directory of tls.crt, tls.key and ca.crt.
	FlagTLSDir = "agent-tls-dir"
)

// ClientNames are the identities an agent answers.
var ClientNames = []string{AgentIdentity, OperatorIdentity}

// KeyPair parses a key pair and the CAs to verify peers against.
func KeyPair(certPEM, keyPEM, caPEM []byte) (*tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, errors.New("ca.crt holds no certificate")
	}
	return &cert, pool, nil
}

// ClientConfig reaches the agents of the instance whose CAs are pool, presenting cert: the
// agent is verified against pool and ServerName.
func ClientConfig(cert *tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: ServerName, RootCAs: pool,
		Certificates: []tls.Certificate{*cert}}
}

// ClientTLSFromPEM is the configuration to reach the agents of the instance whose CAs are caPEM,
// presenting the key pair certPEM, keyPEM (the operator's, or a backup Job's from its
// environment).
func ClientTLSFromPEM(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	cert, pool, err := KeyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("agent TLS: %w", err)
	}
	return ClientConfig(cert, pool), nil
}
