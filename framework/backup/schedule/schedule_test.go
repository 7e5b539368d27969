package schedule

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestDueIsTheLatestMissedSlot(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s, err := Parse("30 3 * * *", "Europe/Paris", now)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 11, 19, 2, 30, 0, 0, time.UTC) // 03:30 in Paris
	slot, next := s.Due(last, now)
	if want := time.Date(2026, 11, 21, 2, 30, 0, 0, time.UTC); !slot.Equal(want) {
		t.Fatalf("due slot %v, want the latest missed one %v", slot, want)
	}
	if want := time.Date(2026, 11, 22, 2, 30, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next %v, want %v", next, want)
	}
	if slot, _ := s.Due(now, now); !slot.IsZero() {
		t.Fatalf("nothing is due right after a run, got %v", slot)
	}
	if slot, _ := s.Due(now.Add(time.Hour), now); !slot.IsZero() {
		t.Fatalf("a last run in the future (a clock that stepped back) makes nothing due, got %v", slot)
	}
}

// Expressions that never fire, and unknown time zones, are refused with a message that says so;
// 29 February (every four years) is a date.
func TestNeverFiringSchedulesAreRefused(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ expr, zone, want string }{
		{"0 0 30 2 *", "", "never fires"},
		{"0 0 31 4 *", "", "never fires"},
		{"0 0 31 2,4,6,9,11 *", "Europe/Paris", "never fires"},
		{"* * * * *", "Mars/Olympus", "not an IANA time zone"},
		{"61 * * * *", "", "schedule"},
	} {
		if _, err := Parse(c.expr, c.zone, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q in %q: %v, want %q", c.expr, c.zone, err, c.want)
		}
	}
	for _, expr := range []string{"0 0 29 2 *", "*/5 * * * *", "0 3 * * 1-5"} {
		if _, err := Parse(expr, "America/New_York", now); err != nil {
			t.Errorf("%q: %v", expr, err)
		}
	}
}

// Due finds what walking every slot would find, for schedules dense and sparse, across DST
// changes, after gaps of minutes to years (the walk being the reference, on short gaps only).
func TestDueAgreesWithWalkingEverySlot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, expr := range []string{"* * * * *", "*/7 * * * *", "30 2 * * *", "0 9-17 * * 1-5", "0 0 29 2 *", "15 4 1 */3 *"} {
		s, err := Parse(expr, "Europe/Paris", base)
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			last := base.Add(time.Duration(rng.Int64N(int64(60 * 24 * time.Hour))))
			now := last.Add(time.Duration(rng.Int64N(int64(10 * 24 * time.Hour))))
			var want time.Time
			for t := s.Next(last); !t.IsZero() && !t.After(now); t = s.Next(t) {
				want = t
			}
			if got, _ := s.Due(last, now); !got.Equal(want) {
				t.Errorf("%q from %v to %v: due %v, want %v", expr, last, now, got, want)
			}
		}
	}
	// Years of missed minutes: the latest is the last minute before now.
	s, _ := Parse("* * * * *", "", base)
	now := base.AddDate(3, 0, 0).Add(90 * time.Second)
	if got, _ := s.Due(base, now); !got.Equal(now.Truncate(time.Minute)) {
		t.Errorf("after three years: due %v, want %v", got, now.Truncate(time.Minute))
	}
}
