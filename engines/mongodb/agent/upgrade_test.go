package agent

import (
	"context"
	"fmt"
	"os"
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
	pid := testenv.ChildOf(t, agent.Cmd.Process.Pid) // FerretDB does not report its PID
	started := testenv.ProcessStart(t, pid)

	agent.Upgrade(t, next)
	if st, err := agent.Conn.Status(ctx); err != nil || st.Role != RolePrimary {
		t.Fatalf("after the upgrade: %+v, %v; want the primary", st, err)
	}
	if p := testenv.ChildOf(t, agent.Cmd.Process.Pid); p != pid || testenv.ProcessStart(t, p) != started {
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
