// Package certs is the operator's own small certificate authority: one CA per instance, which
// signs a server certificate for the instance's Service names, the agents' certificate for the
// agent API's mutual TLS and the operator's own client certificate; certificates are renewed well
// before they expire and the CA is rotated a year before it does (rotation.go). Clients trust the
// instance's CA, which the operator publishes in a ConfigMap.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Lifetimes. The CA lives long because every client trusts it; server certificates are short and
// renewed at two thirds of their life, so a missed renewal has a month to be noticed.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 90 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
	// backdate tolerates clocks that lag the operator's.
	backdate = 5 * time.Minute
)

// Authority is a CA certificate and its key.
type Authority struct {
	Cert    *x509.Certificate
	key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewAuthority creates a self-signed CA named name.
func NewAuthority(name string, now time.Time) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Datafleet"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	certPEM, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return ParseAuthority(certPEM, keyPEM)
}

// ParseAuthority reads a CA from PEM.
func ParseAuthority(certPEM, keyPEM []byte) (*Authority, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, errors.New("not a CA certificate and signing key")
	}
	return &Authority{Cert: cert, key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Issue returns a new server certificate for dnsNames and its key, both PEM.
func (a *Authority) Issue(dnsNames []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	return a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0], Organization: []string{"Datafleet"}},
		DNSNames:    dnsNames,
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(ServerValidity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// IssueAgent returns the agents' certificate and key (PEM): it serves the agent API under
// agent.ServerName and is presented by the agents and backup Jobs as clients (see framework/agent).
func (a *Authority) IssueAgent(now time.Time) (certPEM, keyPEM []byte, err error) {
	return a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: fwagent.AgentIdentity, Organization: []string{"Datafleet"}},
		DNSNames:    []string{fwagent.ServerName},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(ServerValidity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
}

// IssueClient returns a client certificate named commonName, valid for validity, and its key.
func (a *Authority) IssueClient(commonName string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	return a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName, Organization: []string{"Datafleet"}},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(validity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// issue signs tmpl for a new key.
func (a *Authority) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if certPEM, err = sign(tmpl, a.Cert, key.Public(), a.key); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// Renewal says why a server certificate must be replaced, or "" when it is good until
// notAfter minus RenewBefore.
func (a *Authority) Renewal(certPEM []byte, dnsNames []string, now time.Time) (why string, notAfter time.Time) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return "unreadable: " + err.Error(), time.Time{}
	}
	if err := cert.CheckSignatureFrom(a.Cert); err != nil {
		return "not signed by the instance's CA", time.Time{}
	}
	if !slices.Equal(cert.DNSNames, dnsNames) {
		return "the Service names changed", time.Time{}
	}
	if !now.Before(cert.NotAfter.Add(-RenewBefore)) {
		return fmt.Sprintf("expires at %s", cert.NotAfter.UTC().Format(time.RFC3339)), time.Time{}
	}
	return "", cert.NotAfter
}

// ParseCertificate reads the first certificate of a PEM bundle.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
