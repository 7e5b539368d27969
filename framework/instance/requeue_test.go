package instance

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Settled polls are spread: each instance's period is its own, within a tenth above the engine's,
// and the same at every reconcile; short waits keep their time.
func TestSettledPollsAreSpreadByInstance(t *testing.T) {
	const n = 1000
	periods := map[time.Duration]bool{}
	buckets := make([]int, 10)
	for i := range n {
		uid := types.UID(fmt.Sprintf("9a0c6f1e-0000-4000-8000-%012d", i))
		d := spread(time.Minute, uid)
		if d < time.Minute || d >= time.Minute+6*time.Second {
			t.Fatalf("a minute's poll spread to %s", d)
		}
		if again := spread(time.Minute, uid); again != d {
			t.Fatalf("the same instance's period moved: %s, then %s", d, again)
		}
		periods[d] = true
		buckets[(d-time.Minute)*10/(6*time.Second)]++
	}
	if len(periods) < n*9/10 {
		t.Fatalf("%d instances have only %d distinct periods", n, len(periods))
	}
	for i, b := range buckets {
		if b < n/10/2 || b > n/10*2 {
			t.Fatalf("the spread is lumpy: %d of %d periods in its tenth %d (%v)", b, n, i, buckets)
		}
	}
	if d := spread(5*time.Second, "x"); d != 5*time.Second {
		t.Fatalf("a 5 s wait spread to %s", d)
	}
}
