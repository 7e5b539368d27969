package primary

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// An in-place agent upgrade (framework/agent/agentruntime/upgrade.go) replaces the agent process
// while the engine's process runs: a primary stays primary. Its new keeper must fence by the same
// clock as the old one, neither later (a primary cut off just before the upgrade would serve past
// its bound) nor at once (it has not renewed yet: its first watchdog tick would fence a healthy
// primary). So the old keeper hands its clocks over, as ages on the machine's monotonic clock,
// which both processes read and no wall-clock step moves, along with what it last saw.

// keeperHandover is a Keeper's state for its successor in the same pod.
type keeperHandover struct {
	// At is when the ages were taken, in nanoseconds of CLOCK_MONOTONIC.
	At int64 `json:"at"`
	// Ages of the keeper's clocks at At; absent for a time that never was.
	Born          *time.Duration    `json:"born,omitempty"`
	LastRenew     *time.Duration    `json:"lastRenew,omitempty"`
	LastConfirmed *time.Duration    `json:"lastConfirmed,omitempty"`
	LastRead      *time.Duration    `json:"lastRead,omitempty"`
	LastVouched   *time.Duration    `json:"lastVouched,omitempty"`
	WasPrimary    bool              `json:"wasPrimary,omitempty"`
	SeenHolder    *string           `json:"seenHolder,omitempty"`
	Peers         map[string]string `json:"peers,omitempty"`
}

// monotonic is CLOCK_MONOTONIC in nanoseconds (a variable for tests).
var monotonic = func() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // Linux always has it
	}
	return ts.Nano()
}

// Handover is the keeper's state for the next agent of the same pod; take it after Keep returned.
func (k *Keeper) Handover() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	age := func(t time.Time) *time.Duration {
		if t.IsZero() {
			return nil
		}
		d := now.Sub(t)
		return &d
	}
	return json.Marshal(keeperHandover{At: monotonic(), Born: age(k.born), LastRenew: age(k.lastRenew),
		LastConfirmed: age(k.lastConfirmed), LastRead: age(k.lastRead), LastVouched: age(k.lastVouched),
		WasPrimary: k.wasPrimary, SeenHolder: k.seenHolder, Peers: k.peers})
}

// Resume takes over what the previous agent's keeper handed over (Handover), before Keep runs.
// The time the handover took counts: every clock is as old as it would be in the old keeper.
func (k *Keeper) Resume(b []byte) error {
	var h keeperHandover
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("the previous keeper's state: %w", err)
	}
	elapsed := time.Duration(monotonic() - h.At)
	if h.At == 0 || elapsed < 0 {
		return errors.New("the previous keeper's state was not taken on this machine's clock")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	at := func(age *time.Duration) time.Time {
		if age == nil {
			return time.Time{}
		}
		return now.Add(-*age - elapsed)
	}
	k.born, k.lastRenew, k.lastConfirmed, k.lastRead, k.lastVouched =
		at(h.Born), at(h.LastRenew), at(h.LastConfirmed), at(h.LastRead), at(h.LastVouched)
	k.wasPrimary, k.seenHolder, k.peers = h.WasPrimary, h.SeenHolder, h.Peers
	return nil
}
