package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestCanariesThenWavesThenAPauseOnAStall(t *testing.T) {
	g := NewGate(Policy{Canaries: 1, MaxConcurrent: 2, ReadyTimeout: 10 * time.Minute})
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "apps", Name: n} }
	t0 := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	admit := func(n string, at time.Time, want bool, why string) {
		t.Helper()
		ok, reason := g.Admit(key(n), at)
		if ok != want || !strings.Contains(reason, why) {
			t.Fatalf("Admit(%s) = %v %q, want %v %q", n, ok, reason, want, why)
		}
	}
	admit("a", t0, true, "")
	admit("b", t0, false, "paced: 1 canaries restart one at a time first")
	admit("a", t0, true, "") // reconciles repeat
	g.Observe(key("a"), false)
	admit("b", t0, false, "canaries")
	if !g.Admitted(key("a")) || g.Admitted(key("b")) {
		t.Fatal("Admitted: a restarts, b waits")
	}
	g.Observe(key("a"), true) // the canary is Ready again: the waves begin, two at a time
	if g.Admitted(key("a")) {
		t.Fatal("a is still admitted once Ready again")
	}
	admit("b", t0, true, "")
	admit("c", t0, true, "")
	admit("d", t0, false, "paced: at most 2 instances restart at once")
	g.Observe(key("b"), true)
	admit("d", t0.Add(time.Minute), true, "")
	// c never comes back: after the timeout nobody else starts, until it does.
	admit("e", t0.Add(11*time.Minute), false, "paused: apps/c is not Ready again 10m0s after its restart began")
	g.Observe(key("c"), true)
	admit("e", t0.Add(12*time.Minute), false, "paused: apps/d is not") // d too, by now
	g.Forget(key("d"))                                                 // deleted meanwhile
	admit("e", t0.Add(12*time.Minute), true, "")
}
