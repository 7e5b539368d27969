package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// These tests run the agent against real PostgreSQL binaries from Debian (make test installs them).

func binDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("POSTGRES_BIN_DIR"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	t.Fatal("no PostgreSQL binaries: run `make test` (it installs postgresql-15), " +
		"or apt-get install postgresql-15, or set POSTGRES_BIN_DIR")
	return ""
}

// newConfig makes a data directory the postgres user owns. initdb refuses to run as root, so when
// the test runs as root PostgreSQL's processes run as the postgres user.
func newConfig(t testing.TB) Config {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgagent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := Config{BinDir: binDir(t), DataDir: filepath.Join(dir, "pgdata"), SocketDir: filepath.Join(dir, "run"),
		ListenAddresses: "127.0.0.1", Port: testenv.FreePort(t), ParametersFile: filepath.Join(dir, "parameters.conf"),
		Credential: testenv.ServerUser(t, "postgres", "postgresql-15", dir)}
	return c
}

// running is an agent started in the background.
type running struct {
	addr string
	// metrics is the agent's metrics endpoint, which answers scrapeToken.
	metrics string
	cancel  context.CancelFunc
	done    chan error
	// tls is the agent's instance: its certificate, and the operator's client of it.
	tls *agenttest.Instance
}

// agent is the running agent, reached as the operator reaches it.
func (r *running) agent() fwagent.Conn { return r.tls.At(r.addr) }

func start(t testing.TB, e *Engine) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), cancel: cancel, done: make(chan error, 1), tls: agenttest.New(t)}
	listen := r.tls.Listen(r.addr)
	r.metrics = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	listen.MetricsAddr = r.metrics
	r.tls.ScrapeToken(t, scrapeToken)
	go func() { r.done <- agentruntime.Run(ctx, e, listen) }()
	t.Cleanup(func() { r.stop(t) })
	testenv.Eventually(t, time.Minute, func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("the agent ended: %v", err)
		default:
		}
		st, err := r.agent().Status(context.Background())
		if err != nil {
			return err
		}
		if !st.Ready {
			return fmt.Errorf("not ready: %s", st.Detail)
		}
		return nil
	})
	return r
}

func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
	case <-time.After(time.Minute):
		t.Fatal("the agent did not stop")
	}
}

func (r *running) status(t *testing.T) fwagent.Status {
	t.Helper()
	s, err := r.agent().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return *s
}

// connect opens a superuser connection to database postgres; the caller closes it.
func connect(t testing.TB, e *Engine) *pgx.Conn {
	t.Helper()
	conn, err := dbaConnect(context.Background(), e, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// dbaConnect connects as the superuser the way a person's psql does: with the server's and the
// database's settings, not the agent's pinned ones (sessionSettings), so tests create objects in
// public as people do.
func dbaConnect(ctx context.Context, e *Engine, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = e.Config.SocketDir, uint16(e.Config.Port), Superuser, database
	return pgx.ConnectConfig(ctx, cfg)
}

func execSQL(t testing.TB, e *Engine, statements ...string) {
	t.Helper()
	conn := connect(t, e)
	defer conn.Close(context.Background())
	for _, sql := range statements {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func query(t testing.TB, e *Engine, sql string) string {
	t.Helper()
	conn := connect(t, e)
	defer conn.Close(context.Background())
	var out string
	if err := conn.QueryRow(context.Background(), sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestBootstrapsServesAndKeepsDataAcrossRestarts(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	r := start(t, e)
	if s := r.status(t); !s.Ready || s.Role != "primary" {
		t.Fatalf("status %+v, want a ready primary", s)
	}
	execSQL(t, e, "CREATE TABLE orders (id int PRIMARY KEY, what text)", "INSERT INTO orders VALUES (1, 'kept')")
	r.stop(t)
	if err := <-r.done; err != nil {
		t.Fatalf("a stop should be a clean fast shutdown, got %v", err)
	}
	r.done <- nil

	// Second start: no initdb (the row is still there), parameters from the included file apply.
	if err := os.WriteFile(e.Config.ParametersFile, []byte("work_mem = '7MB'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, e)
	if got := query(t, e, "SELECT what FROM orders WHERE id = 1"); got != "kept" {
		t.Errorf("row after restart: %q", got)
	}
	if got := query(t, e, "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem from the parameters file: %q", got)
	}
	conf, _ := os.ReadFile(filepath.Join(e.Config.DataDir, "postgresql.conf"))
	if n := strings.Count(string(conf), includeMarker); n != 1 {
		t.Errorf("postgresql.conf includes the parameters file %d times, want once", n)
	}
	// Settings the operator relies on come from the command line; the parameters file cannot move them.
	if got := query(t, e, "SHOW port"); got != strconv.Itoa(e.Config.Port) {
		t.Errorf("port %s", got)
	}
}

func TestTCPLoginNeedsAPassword(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.Config.Port))
	if err != nil {
		t.Fatalf("postgres should listen on TCP: %v", err)
	}
	conn.Close()
	tcp := &Engine{Config: e.Config}
	tcp.Config.SocketDir = "127.0.0.1" // pgx treats a non-path host as TCP
	c, err := tcp.Connect(context.Background(), "postgres")
	if err == nil {
		c.Close(context.Background())
		t.Fatal("the superuser logged in over TCP without a password")
	}
	if !strings.Contains(err.Error(), "password") {
		t.Errorf("want a password failure, got %v", err)
	}
}

// Through the pod-local socket only the superuser and a restore's Restorer log in (without a
// password); a binding's user, whose password works over TCP, is refused there.
func TestSocketLoginIsTheOperatorsOnly(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	user := names.UserStem("apps", "orders") + "_0"
	ensure(t, e, user, "u-secret", v1alpha1.RoleReadWrite, "app")
	mustLogin(t, e, user, "u-secret", "app")
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = e.Config.SocketDir, uint16(e.Config.Port), user, "u-secret", "app"
	if c, err := pgx.ConnectConfig(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "pg_hba.conf rejects connection") {
		if c != nil {
			c.Close(context.Background())
		}
		t.Fatalf("a binding's user through the socket: %v", err)
	}
}

func TestAgentEndsWhenPostgresDies(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	r := start(t, e)
	pidLine, err := os.ReadFile(filepath.Join(e.Config.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(pidLine), "\n", 2)[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil || !strings.Contains(err.Error(), "exited") {
			t.Fatalf("want an error saying postgres exited, got %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the agent kept running after postgres died")
	}
	if _, err := r.agent().Status(context.Background()); err == nil {
		t.Errorf("the agent should stop serving once postgres is gone")
	} else if !errors.Is(err, syscall.ECONNREFUSED) && !strings.Contains(err.Error(), "refused") {
		t.Logf("health after exit: %v", err)
	}
}
