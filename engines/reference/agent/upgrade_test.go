package agent

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An in-place agent upgrade as an operator release makes it, with two builds of the agent in a
// process of its own and a real Redis server: the operator sends the new build, the old agent
// executes it in its place, and the server neither restarts nor loses a write. A new engine's
// Adopter copies this test.

// serverPID is the Redis server's PID, as it reports it.
func serverPID(t *testing.T, a Args, password string) int {
	t.Helper()
	info := do(t, a, []string{"AUTH", password}, []string{"INFO", "server"})[1]
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
}

func TestAnUpgradeReplacesTheAgentWhileTheServerRuns(t *testing.T) {
	requireRedis(t)
	old, next := agenttest.Releases(t)
	const password = "s3cret-generated"
	a := pod(t, password)
	agent := agenttest.New(t).StartProcess(t, agenttest.Command{Bin: old.Path, Engine: "reference",
		Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Args: fwagent.Flags(a)})
	agent.WaitFor(t, old)
	if got := do(t, a, []string{"AUTH", password}, []string{"SET", "order:1", "paid"}); got[1] != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	pid := serverPID(t, a, password)
	started := testenv.ProcessStart(t, pid)

	agent.Upgrade(t, next)
	if p := serverPID(t, a, password); p != pid || testenv.ProcessStart(t, p) != started {
		t.Fatalf("the server's process changed across the upgrade: pid %d started %s, was pid %d started %s", p, testenv.ProcessStart(t, p), pid, started)
	}
	if got := do(t, a, []string{"AUTH", password}, []string{"GET", "order:1"}); got[1] != "paid" {
		t.Fatalf("after the upgrade GET order:1 = %q, want paid", got)
	}

	// The new agent supervises the adopted server as its own: the kubelet's stop signal stops
	// the server cleanly, and the agent ends with it.
	agent.StopsItsServer(t, pid)
}
