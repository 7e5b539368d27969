// Package rollout paces the restarts the operator makes on its own (a new agent, applied in
// maintenance windows) across the fleet: a few canaries first, then at most so many instances at
// once, and no new one while a restarted instance has not come back Ready in time. One Gate
// serves every engine's instance controller in a manager.
package rollout

import (
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Policy is the platform's pace.
type Policy struct {
	// Canaries restart one at a time before the others start (0: none).
	Canaries int
	// MaxConcurrent instances restart at once after the canaries (at least 1).
	MaxConcurrent int
	// ReadyTimeout is how long a restarted instance may take to be Ready again before the rollout
	// stops starting others (0: no limit).
	ReadyTimeout time.Duration
	// Poll is how often an instance that waits for the gate asks again (default 15s): no event
	// tells it that another one finished.
	Poll time.Duration
}

// Gate admits instances to their operator-made restart. It keeps what it admitted in memory: after
// an operator restart it starts counting again (the canaries too), so it errs towards fewer
// restarts at once, not more.
type Gate struct {
	policy Policy

	mu        sync.Mutex
	restarts  map[types.NamespacedName]time.Time // admitted and not yet Ready again, since when
	completed int                                // admitted and Ready again
}

// NewGate returns a gate with this policy.
func NewGate(p Policy) *Gate {
	if p.MaxConcurrent < 1 {
		p.MaxConcurrent = 1
	}
	if p.Poll <= 0 {
		p.Poll = 15 * time.Second
	}
	return &Gate{policy: p, restarts: map[types.NamespacedName]time.Time{}}
}

// Poll is how often an instance that waits for the gate should ask again.
func (g *Gate) Poll() time.Duration { return g.policy.Poll }

// Admit reports whether the instance may begin its restart now; if not, it says why. An
// instance already admitted is admitted again (reconciles repeat).
func (g *Gate) Admit(key types.NamespacedName, now time.Time) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.restarts[key]; ok {
		return true, ""
	}
	if why := g.stalled(now); why != "" {
		return false, why
	}
	// The reasons do not count what changes often: every waiting instance shows its reason, and
	// a reason that changed would be a status write for each of them.
	limit, why := g.policy.MaxConcurrent, fmt.Sprintf("paced: at most %d instances restart at once", g.policy.MaxConcurrent)
	if g.completed < g.policy.Canaries {
		limit, why = 1, fmt.Sprintf("paced: %d canaries restart one at a time first", g.policy.Canaries)
	}
	if len(g.restarts) >= limit {
		return false, why
	}
	g.restarts[key] = now
	return true, ""
}

// stalled names the admitted instance that has been waiting longest to be Ready again, if that is
// longer than the policy's timeout.
func (g *Gate) stalled(now time.Time) string {
	if g.policy.ReadyTimeout == 0 {
		return ""
	}
	var oldest types.NamespacedName
	var since time.Time
	for key, t := range g.restarts {
		if since.IsZero() || t.Before(since) || t.Equal(since) && key.String() < oldest.String() {
			oldest, since = key, t
		}
	}
	if since.IsZero() || now.Sub(since) <= g.policy.ReadyTimeout {
		return ""
	}
	return fmt.Sprintf("paused: %s is not Ready again %s after its restart began", oldest, g.policy.ReadyTimeout)
}

// Admitted reports whether the instance is restarting by the gate's leave, so that callers do
// the work of observing it only then.
func (g *Gate) Admitted(key types.NamespacedName) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.restarts[key]
	return ok
}

// Observe tells the gate how an instance it admitted is doing: Ready again (its pods rolled and
// serve) completes its restart; an instance it did not admit is ignored.
func (g *Gate) Observe(key types.NamespacedName, ready bool) {
	if !ready {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.restarts[key]; ok {
		delete(g.restarts, key)
		g.completed++
	}
}

// Forget drops an instance that went away while restarting.
func (g *Gate) Forget(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.restarts, key)
}
