package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An operator release upgrades the agent in place (framework/agent/agentruntime/upgrade.go): the
// agent runs in a process of its own as the postgres user, as in a pod, and is replaced by
// another build while a client's session stays open. The postmaster keeps its PID and start time,
// the session survives, a committed row is there, and the new agent supervises the postmaster it
// adopted: its stop signal stops postgres cleanly. The primary lease's part of the handover (its
// clocks) is proven in framework/primary.
func TestAnUpgradeReplacesTheAgentWhilePostgresRuns(t *testing.T) {
	old, next := agenttest.Releases(t)
	c := newConfig(t)
	if c.Credential == nil {
		t.Fatal("this test runs the agent as the postgres user, so it must run as root (make test does)")
	}
	if err := os.WriteFile(c.ParametersFile, []byte("max_connections = 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Config: c}
	args := fwagent.Flags(Args{BinDir: c.BinDir, DataDir: c.DataDir, SocketDir: c.SocketDir, ListenAddresses: c.ListenAddresses,
		Port: c.Port, ParametersFile: c.ParametersFile, Name: "ledger-0"})
	agent := agenttest.New(t).StartProcess(t, agenttest.Command{Bin: old.Path, Engine: "postgres",
		Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Args: args, Owner: c.Credential})
	agent.WaitFor(t, old)

	ctx := context.Background()
	session := connect(t, e)
	defer session.Close(ctx)
	if _, err := session.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	postmaster := postmasterPID(t, c.DataDir)
	started := testenv.ProcessStart(t, postmaster)

	agent.Upgrade(t, next)
	if p := postmasterPID(t, c.DataDir); p != postmaster || testenv.ProcessStart(t, p) != started {
		t.Fatalf("the postmaster changed across the upgrade: pid %d, was %d started %s", p, postmaster, started)
	}
	var n int
	if err := session.QueryRow(ctx, "INSERT INTO orders VALUES (2) RETURNING (SELECT count(*) FROM orders)").Scan(&n); err != nil {
		t.Fatalf("the session opened before the upgrade: %v", err)
	}
	if n != 1 { // the subquery sees the snapshot before the insert
		t.Fatalf("orders before the second insert = %d, want 1", n)
	}
	if got := query(t, e, "SELECT current_setting('max_connections')"); got != "20" {
		t.Fatalf("max_connections = %s after the upgrade, want the parameters file's 20", got)
	}

	agent.StopsItsServer(t, postmaster)
	if _, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s", c.SocketDir, c.Port, Superuser)); err == nil {
		t.Fatal("postgres still accepts connections after its agent stopped")
	}
}

// postmasterPID is the first line of postmaster.pid.
func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}
