package primary

import (
	"testing"
	"time"
)

// A keeper resumed from its predecessor's handover fences by the predecessor's clock: not at once
// (it has not renewed the lease itself yet) and not later than the old keeper would have. The
// clocks are injected: the wall clock steps 3 hours during the handover, the monotonic one by the
// 400 ms the exec took, and only the latter counts.
func TestAResumedKeeperFencesByThePreviousKeepersClock(t *testing.T) {
	mono := int64(1_000_000_000_000)
	defer func(m func() int64) { monotonic = m }(monotonic)
	monotonic = func() int64 { return mono }

	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	holder := "ledger-0"
	old := &Keeper{Identity: "ledger-0", Now: func() time.Time { return t0 }}
	old.born, old.lastRenew, old.wasPrimary, old.seenHolder = t0.Add(-time.Hour), t0.Add(-4*time.Second), true, &holder
	old.peers = map[string]string{"ledger-1": "198.18.0.11"}
	state, err := old.Handover()
	if err != nil {
		t.Fatal(err)
	}

	exec := 400 * time.Millisecond
	mono += int64(exec)
	wall := t0.Add(3 * time.Hour) // the wall clock stepped meanwhile
	next := &Keeper{Identity: "ledger-0", Now: func() time.Time { return wall }}
	if err := next.Resume(state); err != nil {
		t.Fatal(err)
	}
	if !next.wasPrimary || next.seenHolder == nil || *next.seenHolder != holder || next.peers["ledger-1"] != "198.18.0.11" {
		t.Fatalf("resumed keeper: primary %v, seen holder %v, peers %v", next.wasPrimary, next.seenHolder, next.peers)
	}
	// The old keeper renewed 4.4 s before the new one resumed: it fences 6 s after that renewal.
	if stop := next.watchdog(); stop != nil {
		t.Fatalf("the resumed primary fenced at once: %s", stop.Reason)
	}
	wall = wall.Add(FenceAfter - 4*time.Second - exec - 10*time.Millisecond)
	if stop := next.watchdog(); stop != nil {
		t.Fatalf("the resumed primary fenced before its bound: %s", stop.Reason)
	}
	wall = wall.Add(20 * time.Millisecond)
	if stop := next.watchdog(); stop == nil || !stop.Fence {
		t.Fatalf("the resumed primary did not fence %s after the old keeper's last renewal", FenceAfter+10*time.Millisecond)
	}
	if got := next.born; !got.Equal(t0.Add(3*time.Hour - time.Hour - exec)) {
		t.Errorf("born = %v: what the old agent vouched for must count from the old agent's start", got)
	}

	if err := (&Keeper{}).Resume([]byte(`{"at":0}`)); err == nil {
		t.Error("a handover without a monotonic time was accepted")
	}
}
