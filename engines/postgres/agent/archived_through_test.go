package agent

import (
	"testing"
	"time"
)

// The archive reaches a time only once the segments stored reach the position written by then:
// a segment stored late (a backlog) does not carry the archive to its storing time.
func TestArchivedThroughFollowsPositionsNotStoringTimes(t *testing.T) {
	const seg = 16 << 20
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var a archivedThrough
	steps := []struct {
		name        string
		sample      positionSample
		archivedEnd uint64
		want        time.Time
	}{
		{"nothing archived yet", positionSample{at(0), 3*seg + 100}, 0, time.Time{}},
		{"segment 2 stored, the writes are in 3", positionSample{at(10), 3*seg + 200}, 3 * seg, time.Time{}},
		{"a backlog: 3 stored at 60 s while the primary writes in 6", positionSample{at(60), 6*seg + 5}, 4 * seg, at(10)},
		{"4 and 5 stored, still short of the position at 60 s", positionSample{at(70), 6*seg + 9}, 6 * seg, at(10)},
		{"6 stored: every sample up to 70 s is reached", positionSample{at(80), 7*seg + 1}, 7 * seg, at(70)},
		{"quiet since the switch: the position is the stored end", positionSample{at(140), 8 * seg}, 8 * seg, at(140)},
		{"a history file stored last says nothing of this timeline", positionSample{at(150), 8*seg + 7}, 0, at(140)},
		{"a new timeline's positions start again lower: never back", positionSample{at(160), 2 * seg}, 0, at(140)},
	}
	for _, s := range steps {
		if got := a.observe(s.sample, s.archivedEnd); !got.Equal(s.want) {
			t.Fatalf("%s: archived through %v, want %v", s.name, got, s.want)
		}
	}
	if got := segmentEnd("000000020000000000000007", 2, seg); got != 8*seg {
		t.Fatalf("the end of segment 7: %d, want %d", got, 8*seg)
	}
	for _, other := range []string{"000000010000000000000007", "00000002.history", "000000020000000000000007.partial", "000000020000000000000002.00000028.backup", ""} {
		if got := segmentEnd(other, 2, seg); got != 0 {
			t.Fatalf("segmentEnd(%q) on timeline 2: %d, want 0", other, got)
		}
	}
}

// Samples the archive does not reach are bounded; losing the oldest only delays the end.
func TestArchivedThroughKeepsBoundedSamples(t *testing.T) {
	var a archivedThrough
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		a.observe(positionSample{t0.Add(time.Duration(i) * time.Second), uint64(1000 + i)}, 0)
	}
	if len(a.pending) != maxPositionSamples {
		t.Fatalf("%d samples kept, want %d", len(a.pending), maxPositionSamples)
	}
	if got := a.observe(positionSample{t0.Add(2000 * time.Second), 5000}, 1999); !got.Equal(t0.Add(999 * time.Second)) {
		t.Fatalf("archived through %v, want the newest reached sample's time", got)
	}
}
