package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A changed parameters file and a renewed certificate reach a running postgres by a reload: the
// server does not restart, open connections carry on, new ones see the new values.
func TestReloadAppliesParametersAndCertificatesWithoutRestart(t *testing.T) {
	defer func(d time.Duration) { agentruntime.ReloadInterval = d }(agentruntime.ReloadInterval)
	agentruntime.ReloadInterval = 100 * time.Millisecond

	now := time.Now()
	ca, err := certs.NewAuthority("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	const host = "orders.default.svc"
	c := newConfig(t)
	c.TLSDir = filepath.Join(filepath.Dir(c.DataDir), "tls-mount")
	writeCert := func() *x509.Certificate {
		certPEM, keyPEM, err := ca.Issue(certs.DNSNames("default", "cluster.local", "orders"), now)
		if err != nil {
			t.Fatal(err)
		}
		// Like a Secret volume: files the agent may read but postgres may not use as they are.
		if err := os.MkdirAll(c.TLSDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{tlsCertFile: certPEM, tlsKeyFile: keyPEM} {
			if err := os.WriteFile(filepath.Join(c.TLSDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		leaf, _ := certs.ParseCertificate(certPEM)
		return leaf
	}
	first := writeCert()
	e := &Engine{Config: c}
	start(t, e)
	execSQL(t, e, "CREATE ROLE app LOGIN PASSWORD 'app-secret'")

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	// A client that trusts only the CA and checks the Service name, as sslmode=verify-full does.
	dial := func() (*pgx.Conn, *x509.Certificate) {
		t.Helper()
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=app password=app-secret dbname=postgres", c.Port))
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
		cfg.Fallbacks = nil
		conn, err := pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			t.Fatalf("TLS login verified against the CA: %v", err)
		}
		tc, ok := conn.PgConn().Conn().(*tls.Conn)
		if !ok {
			t.Fatal("the connection is not TLS")
		}
		return conn, tc.ConnectionState().PeerCertificates[0]
	}
	open, served := dial()
	defer open.Close(context.Background())
	if served.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("postgres serves another certificate than the mounted one")
	}
	started := query(t, e, "SELECT pg_postmaster_start_time()::text")

	// Renew the certificate and change a reload parameter, as the operator and kubelet would.
	second := writeCert()
	if err := os.WriteFile(c.ParametersFile, []byte("work_mem = '9MB'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		conn, served := dial()
		defer conn.Close(context.Background())
		var workMem string
		if err := conn.QueryRow(context.Background(), "SHOW work_mem").Scan(&workMem); err != nil {
			return err
		}
		if workMem != "9MB" || served.SerialNumber.Cmp(second.SerialNumber) != 0 {
			return fmt.Errorf("work_mem %s, renewed certificate served: %v", workMem, served.SerialNumber.Cmp(second.SerialNumber) == 0)
		}
		return nil
	})
	if got := query(t, e, "SELECT pg_postmaster_start_time()::text"); got != started {
		t.Errorf("postgres restarted (started %s, now %s)", started, got)
	}
	var one int
	if err := open.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Errorf("a connection opened before the reload broke: %v", err)
	}
}
