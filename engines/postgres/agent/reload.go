package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
)

// Files of a kubernetes.io/tls Secret, as mounted in the pod; the operator's also holds the
// instance's CA (framework/certs.CAKey).
const (
	tlsCertFile = "tls.crt"
	tlsKeyFile  = "tls.key"
	tlsCAFile   = "ca.crt"
)

// ReloadFiles are the parameters file and, with TLS, the mounted certificate and key: a change to
// any of them is applied with a reload (see fwagent.Reloader). Restart-only parameters also change
// the pod template, so the operator replaces the pods for them.
func (e *Engine) ReloadFiles() []string {
	files := []string{e.Config.ParametersFile}
	if d := e.Config.TLSDir; d != "" {
		files = append(files, filepath.Join(d, tlsCertFile), filepath.Join(d, tlsKeyFile))
	}
	return files
}

// Reload installs the current certificate and asks postgres to re-read its configuration. New
// connections get the new certificate; open ones carry on. If postgres cannot load the new
// certificate it keeps the old one and logs why.
func (e *Engine) Reload(ctx context.Context) error {
	if err := e.installCertificate(); err != nil {
		return err
	}
	return e.queryRow(ctx, "SELECT pg_catalog.pg_reload_conf()", new(bool))
}

// serverTLSDir holds the agent's private copy of the certificate and key: postgres insists that
// its key file is private to it, which a mounted Secret's files need not be.
func (e *Engine) serverTLSDir() string { return filepath.Join(e.Config.SocketDir, "tls") }

// installCertificate copies the mounted certificate and key into serverTLSDir, each file replaced
// atomically. The pair is checked first: Kubernetes swaps a Secret's files together, but two reads
// can straddle a swap, and then the next poll tries again.
func (e *Engine) installCertificate() error {
	src := e.Config.TLSDir
	if src == "" {
		return nil
	}
	cert, err := os.ReadFile(filepath.Join(src, tlsCertFile))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(filepath.Join(src, tlsKeyFile))
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return fmt.Errorf("the mounted certificate and key do not form a pair (yet): %w", err)
	}
	dir := e.serverTLSDir()
	if err := e.mkdir(dir); err != nil {
		return err
	}
	for name, b := range map[string][]byte{tlsCertFile: cert, tlsKeyFile: key} {
		tmp := filepath.Join(dir, "."+name)
		if err := e.writeFile(tmp, b); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// tlsSettings are the agent's settings for TLS, when it is on.
func (e *Engine) tlsSettings() []string {
	if e.Config.TLSDir == "" {
		return nil
	}
	return []string{
		"ssl = 'on'",
		"ssl_cert_file = '" + filepath.Join(e.serverTLSDir(), tlsCertFile) + "'",
		"ssl_key_file = '" + filepath.Join(e.serverTLSDir(), tlsKeyFile) + "'",
		"ssl_min_protocol_version = 'TLSv1.2'",
	}
}
