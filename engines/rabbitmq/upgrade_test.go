package rabbitmq

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An operator release upgrades the agent in place (framework/agent/agentruntime/upgrade.go): the
// node's agent runs in a process of its own as the rabbitmq user, as in a pod, and is replaced by
// another build. The Erlang VM keeps its OS PID and start time, persistent messages confirmed
// before are all there, and the node reads ready from the new agent's first status (it was
// handed over that the administrator's password was checked).
func TestAnUpgradeReplacesTheAgentWhileTheNodeRuns(t *testing.T) {
	old, next := agenttest.Releases(t)
	c := newLocalCluster(t, 1)
	c.bin = old.Path
	n := c.start(0, "")
	waitReady(t, n)
	n.process.WaitFor(t, old)
	publish(t, n, "orders", 200)
	// The management API reports os_pid once its statistics have been collected.
	var pid string
	testenv.Eventually(t, time.Minute, func() error {
		if pid = osPID(t, n); pid == "" {
			return errors.New("no os_pid yet")
		}
		return nil
	})
	beam, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("os_pid %q: %v", pid, err)
	}
	started := testenv.ProcessStart(t, beam)

	n.process.Upgrade(t, next)
	if p := osPID(t, n); p != pid || testenv.ProcessStart(t, beam) != started {
		t.Fatalf("the node's VM changed across the upgrade: pid %s, was %s started %s", p, pid, started)
	}
	if got := consume(t, n, "orders", 200); got != 200 {
		t.Fatalf("after the upgrade %d of 200 confirmed messages, want all", got)
	}
}
