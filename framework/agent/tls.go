package agent

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
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

// Files of a TLS directory: a kubernetes.io/tls Secret with the CA beside the key pair.
const (
	fileCert = "tls.crt"
	fileKey  = "tls.key"
	fileCA   = "ca.crt"
)

// ClientNames are the identities an agent answers.
var ClientNames = []string{AgentIdentity, OperatorIdentity}

// tlsDir reads a mounted TLS directory, again when its files change: Kubernetes replaces a
// renewed Secret's files in place, so neither the agent nor its clients restart for a renewal.
// Reads are throttled to one per second.
type tlsDir struct {
	dir     string
	mu      sync.Mutex
	checked time.Time
	raw     []byte
	cert    *tls.Certificate
	pool    *x509.CertPool
}

func (d *tlsDir) load() (*tls.Certificate, *x509.CertPool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cert != nil && time.Since(d.checked) < time.Second {
		return d.cert, d.pool, nil
	}
	var raw [3][]byte
	for i, f := range []string{fileCert, fileKey, fileCA} {
		b, err := os.ReadFile(filepath.Join(d.dir, f))
		if err != nil {
			return nil, nil, fmt.Errorf("agent TLS: %w", err)
		}
		raw[i] = b
	}
	joined := bytes.Join(raw[:], []byte{0})
	if d.cert == nil || !bytes.Equal(joined, d.raw) {
		cert, pool, err := keyPair(raw[0], raw[1], raw[2])
		if err != nil {
			return nil, nil, fmt.Errorf("agent TLS in %s: %w", d.dir, err)
		}
		d.raw, d.cert, d.pool = joined, cert, pool
	}
	d.checked = time.Now()
	return d.cert, d.pool, nil
}

func keyPair(certPEM, keyPEM, caPEM []byte) (*tls.Certificate, *x509.CertPool, error) {
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

// ServerTLS is the agent's listener configuration: its certificate from dir, client certificates
// verified against dir's CA when given (the kubelet's probes give none; the handlers that need
// one check it, see authorized).
func ServerTLS(dir string) (*tls.Config, error) {
	d := &tlsDir{dir: dir}
	if _, _, err := d.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool, err := d.load()
			if err != nil {
				return nil, err
			}
			return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
				ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}, nil
		},
	}, nil
}

// clientIdentity is the verified client certificate's identity, or "" when the request carries
// none (plain HTTP, or TLS without a client certificate). The TLS handshake already refused a
// certificate that does not chain to the instance's CA for client use.
func clientIdentity(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.CommonName
}

// clientConfig reaches the agents of the instance whose CAs are pool, presenting cert: the
// agent is verified against pool and ServerName.
func clientConfig(cert *tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: ServerName, RootCAs: pool,
		Certificates: []tls.Certificate{*cert}}
}

// ClientTLSFromPEM is the configuration to reach the agents of the instance whose CAs are caPEM,
// presenting the key pair certPEM, keyPEM (the operator's, or a backup Job's from its
// environment).
func ClientTLSFromPEM(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	cert, pool, err := keyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("agent TLS: %w", err)
	}
	return clientConfig(cert, pool), nil
}

// PeerDialer reaches the agents of the pod's own instance with the agents' certificate in dir,
// read again when it changes.
func PeerDialer(dir string) Dialer {
	d := &tlsDir{dir: dir}
	return Dialer{config: func() (*tls.Config, error) {
		cert, pool, err := d.load()
		if err != nil {
			return nil, err
		}
		return clientConfig(cert, pool), nil
	}}
}

func isClient(id string) bool { return slices.Contains(ClientNames, id) }
