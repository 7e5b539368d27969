package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// writeTLSDir writes what the instance's TLS Secret holds, as its volume shows it to the agent.
func writeTLSDir(t *testing.T, dir string, ca *certs.Authority, dnsNames ...string) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(dnsNames, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{tlsCertFile: certPEM, tlsKeyFile: keyPEM, tlsCAFile: ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// With TLS required, a login in clear is refused (replication included), and a replica streams
// only from a primary whose certificate the instance's CA signed for the name it dials.
func TestTLSRequiredRefusesClearTextAndVerifiesThePrimary(t *testing.T) {
	rs := newReplicaSet(t, 2, "")
	ca, err := certs.NewAuthority("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rs.members {
		m.e.Config.TLSDir = filepath.Join(filepath.Dir(m.e.Config.DataDir), "tls-mount")
		m.e.Config.TLSRequired = true
		// The name the replica verifies, as the Service name in a pod.
		m.e.Config.Source = strings.ReplaceAll(m.e.Config.Source, "127.0.0.1", "localhost")
		writeTLSDir(t, m.e.Config.TLSDir, ca, "localhost")
	}
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	p0 := rs.members["pg-0"].e
	testenv.Eventually(t, time.Minute, func() error {
		got := query(t, p0, "SELECT coalesce(string_agg(s.ssl::text, ','), '') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
		if got != "true" {
			return fmt.Errorf("replication connections over TLS: %q, want one, encrypted", got)
		}
		return nil
	})

	execSQL(t, p0, "CREATE ROLE app LOGIN PASSWORD 'app-secret'")
	for _, user := range []string{"app", ReplicationUser} {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=app-secret dbname=postgres sslmode=disable", p0.Config.Port, user))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := pgx.ConnectConfig(context.Background(), cfg); err == nil {
			c.Close(context.Background())
			t.Errorf("%s logged in in clear", user)
		} else if !strings.Contains(err.Error(), "no encryption") {
			t.Errorf("%s in clear: want a refusal for no encryption, got %v", user, err)
		}
	}

	// A replica that trusts another CA does not take this primary for its own.
	other, err := certs.NewAuthority("another CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stranger := &Engine{Config: rs.members["pg-1"].e.Config}
	stranger.Config.TLSDir = filepath.Join(t.TempDir(), "tls-mount")
	writeTLSDir(t, stranger.Config.TLSDir, other, "localhost")
	if c, err := stranger.connectSource(context.Background()); err == nil {
		c.Close(context.Background())
		t.Fatal("a replica trusting another CA connected to the primary")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("want a certificate verification failure, got %v", err)
	}
}
