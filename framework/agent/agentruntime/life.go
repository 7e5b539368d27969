package agentruntime

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// life is what the agent knows of its engine's process across the restarts it makes itself.
//
// When the engine's control loop stops the process (a primary that steps down or fences, a
// replica that must be rewound), the agent starts it again in place, in the same container: the
// kubelet's restart back-off, meant for crashes, would otherwise grow with every planned
// switchover (10 s, 20 s, 40 s ... 5 min) and keep a member that did nothing wrong out of service.
// Those restarts do not show in the pod's restart count, so the agent reports them itself (in
// its status and as datafleet_agent_engine_restarts_total).
type life struct {
	// exited is set when the process ended on its own: the liveness probe fails, and the container
	// ends. A process the agent stops to restart it does not set it.
	exited atomic.Bool
	// stopping is set while the agent stops the process itself.
	stopping atomic.Bool

	mu       sync.Mutex
	started  time.Time // when the current process started (zero: not known, an adopted one)
	restarts int
	last     *agent.RestartStatus
	short    int // consecutive restarts after a process that ran less than settledAfter
}

// settledAfter is how long a process must run for its next restart to come at once again.
const settledAfter = 10 * time.Minute

// maxRestartDelay caps the wait between restarts of a process that keeps being stopped soon after
// it started (a replica that cannot follow its primary even after a rewind).
const maxRestartDelay = time.Minute

// begin records that a process started at now.
func (l *life) begin(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = now
	l.stopping.Store(false)
}

// restart records that the control loop stopped the process at now for reason, and says how long
// to wait before starting it again: not at all after a process that ran settledAfter (or
// for a time not known), then 1 s, 2 s, 4 s ... up to maxRestartDelay while each ran less.
func (l *life) restart(now time.Time, reason string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restarts++
	l.last = &agent.RestartStatus{Count: l.restarts, LastReason: reason, LastTime: now.UTC().Truncate(time.Second)}
	if l.started.IsZero() || now.Sub(l.started) >= settledAfter {
		l.short = 0
		return 0
	}
	l.short++
	if l.short == 1 {
		return 0
	}
	return min(time.Second<<min(l.short-2, 16), maxRestartDelay)
}

// status is what the agent reports of its restarts (nil: none).
func (l *life) status() *agent.RestartStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return nil
	}
	c := *l.last
	return &c
}
