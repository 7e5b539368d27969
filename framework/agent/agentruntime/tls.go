package agentruntime

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// Files of a TLS directory: a kubernetes.io/tls Secret with the CA beside the key pair.
const (
	fileCert = "tls.crt"
	fileKey  = "tls.key"
	fileCA   = "ca.crt"
)

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
		cert, pool, err := agent.KeyPair(raw[0], raw[1], raw[2])
		if err != nil {
			return nil, nil, fmt.Errorf("agent TLS in %s: %w", d.dir, err)
		}
		d.raw, d.cert, d.pool = joined, cert, pool
	}
	d.checked = time.Now()
	return d.cert, d.pool, nil
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

// PeerDialer reaches the agents of the pod's own instance with the agents' certificate in dir,
// read again when it changes.
func PeerDialer(dir string) agent.Dialer {
	d := &tlsDir{dir: dir}
	return agent.DialerFunc(func() (*tls.Config, error) {
		cert, pool, err := d.load()
		if err != nil {
			return nil, err
		}
		return agent.ClientConfig(cert, pool), nil
	})
}

func isClient(id string) bool { return slices.Contains(agent.ClientNames, id) }
