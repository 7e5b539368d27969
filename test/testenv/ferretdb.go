package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// FerretDBVersion is the FerretDB hack/ferretdb.sh builds (no mongod can be installed on these
// machines; FerretDB speaks MongoDB's wire protocol over SQLite, without replica sets or roles).
const FerretDBVersion = "v1.24.0"

// FerretDB is a running FerretDB server with an administrator.
type FerretDB struct {
	Addr           string
	User, Password string
}

// URI is a mongodb:// URI logging in as the administrator.
func (f *FerretDB) URI() string {
	return fmt.Sprintf("mongodb://%s:%s@%s/?authSource=admin&authMechanism=SCRAM-SHA-256", f.User, f.Password, f.Addr)
}

// FerretDBBinary is the FerretDB server the tests run (FERRETDB_BIN, or the one hack/ferretdb.sh built).
func FerretDBBinary(tb testing.TB) string {
	if p := os.Getenv("FERRETDB_BIN"); p != "" {
		return p
	}
	p := filepath.Join(cacheDir(), "bin", "ferretdb-"+FerretDBVersion)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("no FerretDB server at %s: run `make test` (it builds FerretDB), or `hack/ferretdb.sh`, or set FERRETDB_BIN", p)
	}
	return p
}

// StartFerretDB runs FerretDB (SQLite handler, the new authentication with SCRAM) for the test,
// with telemetry off: test traffic stays on this machine.
func StartFerretDB(tb testing.TB) *FerretDB {
	tb.Helper()
	return StartFerretDBAs(tb, "root", "datafleet-test-secret")
}

// StartFerretDBAs is StartFerretDB with the administrator the caller names (an instance's own).
func StartFerretDBAs(tb testing.TB, user, password string) *FerretDB {
	tb.Helper()
	dir := tb.TempDir()
	f := &FerretDB{Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(tb)), User: user, Password: password}
	cmd := exec.Command(FerretDBBinary(tb), "--handler=sqlite", "--sqlite-url=file:"+dir+"/", "--state-dir="+dir,
		"--listen-addr="+f.Addr, "--debug-addr=-", "--telemetry=disable", "--test-enable-new-auth",
		"--setup-database=admin", "--setup-username="+f.User, "--setup-password="+f.Password, "--log-level=warn")
	startServer(tb, cmd)
	Eventually(tb, 30*time.Second, func() error {
		c, err := net.Dial("tcp", f.Addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return f
}
