package agentruntime

import (
	"testing"
	"time"
)

// A process the control loop stops soon after it started is started again at once the first
// time, then after 1 s, 2 s, 4 s ... up to a minute; one that ran ten minutes resets the wait.
func TestRestartsBackOffOnlyWhileTheyComeSoonAfterTheStart(t *testing.T) {
	l := &life{}
	t0 := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	now := t0
	var got []time.Duration
	for range 10 {
		l.begin(now)
		now = now.Add(30 * time.Second)
		got = append(got, l.restart(now, "asked to step down"))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	l.begin(now)
	now = now.Add(settledAfter)
	if d := l.restart(now, "fenced"); d != 0 {
		t.Errorf("after a process that ran %s the wait is %s, want none", settledAfter, d)
	}
	if s := l.status(); s == nil || s.Count != 11 || s.LastReason != "fenced" || !s.LastTime.Equal(now) {
		t.Errorf("status %+v, want 11 restarts, the last one fenced at %s", s, now)
	}
}
