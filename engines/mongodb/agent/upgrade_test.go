package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An operator release upgrades the agent in place (framework/agent/agentruntime/upgrade.go), here
// with FerretDB as the server (no mongod runs on these machines): the agent runs in a process of
// its own and is replaced by another build. FerretDB keeps its PID and start time and the
// documents, and the new agent reports the member a ready primary from its first status: it was
// handed over that the administrator logs in with the Secret's password (as a digest: the
// password never enters the new process's environment).
func TestAnUpgradeReplacesTheAgentWhileFerretDBRuns(t *testing.T) {
	old, next := agenttest.Releases(t)
	cfg := ferretConfig(t)
	args := fwagent.Flags(Args{Server: ServerFerretDB, ConfigDir: cfg.ConfigDir, SecretDir: cfg.SecretDir, DataDir: cfg.DataDir,
		RunDir: cfg.RunDir, Port: cfg.Port})
	agent := agenttest.New(t).StartProcess(t, agenttest.Command{Bin: old.Path, Engine: "mongodb",
		Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Args: args,
		Env: []string{"PATH=" + cfg.BinDir + string(os.PathListSeparator) + os.Getenv("PATH")}})
	agent.WaitFor(t, old)
	ctx := context.Background()
	c := login(t, cfg, "agent-test-secret")
	if _, err := c.Database("app").Collection("notes").InsertOne(ctx, bson.D{{Key: "note", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	pid := serverPID(t, cfg.Port)
	started := testenv.ProcessStart(t, pid)

	agent.Upgrade(t, next)
	if st, err := agent.Conn.Status(ctx); err != nil || st.Role != RolePrimary {
		t.Fatalf("after the upgrade: %+v, %v; want the primary", st, err)
	}
	if p := serverPID(t, cfg.Port); p != pid || testenv.ProcessStart(t, p) != started {
		t.Fatalf("FerretDB's process changed across the upgrade: pid %d, was %d started %s", p, pid, started)
	}
	if n, err := c.Database("app").Collection("notes").CountDocuments(ctx, bson.D{{Key: "note", Value: "kept"}}); err != nil || n != 1 {
		t.Fatalf("after the upgrade, on the connection opened before it: %d documents, %v", n, err)
	}
	if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", agent.Cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	} else if strings.Contains(string(environ), "agent-test-secret") {
		t.Fatal("the new agent's environment holds the administrator's password")
	}

	agent.StopsItsServer(t, pid)
}

// serverPID is the process listening on port, found through /proc/net/tcp and the owners of its
// socket inode: FerretDB does not report its PID.
func serverPID(t *testing.T, port int) int {
	t.Helper()
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) { // 0A: LISTEN
				inode = f[9]
			}
		}
	}
	if inode == "" {
		t.Fatalf("nothing listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if target, err := os.Readlink(fd); err == nil && target == "socket:["+inode+"]" {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	t.Fatalf("no process holds the socket listening on port %d", port)
	return 0
}
