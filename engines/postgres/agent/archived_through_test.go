package agent

import (
	"testing"
	"time"
)

// The archive reaches a time only once the segments stored reach the position written by then,
// or, past it, while no transaction that writes has run: a segment stored late (a backlog) does
// not carry the archive to its storing time, and a database quiet but for PostgreSQL's own
// records is archived up to its last sample.
func TestArchivedThroughFollowsPositionsAndQuiet(t *testing.T) {
	const seg = 16 << 20
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// busy: a transaction with an id running (xmin < xmax); quiet: none, xid next to hand out.
	busy := func(s int, lsn uint64, xmax uint64) positionSample {
		return positionSample{quietAt: at(s).Add(-time.Millisecond), xmin: xmax - 1, xmax: xmax, at: at(s), lsn: lsn}
	}
	quiet := func(s int, lsn uint64, xmax uint64) positionSample {
		return positionSample{quietAt: at(s).Add(-time.Millisecond), xmin: xmax, xmax: xmax, at: at(s), lsn: lsn}
	}
	var a archivedThrough
	steps := []struct {
		name        string
		sample      positionSample
		archivedEnd uint64
		want        time.Time
	}{
		{"nothing archived yet", busy(0, 3*seg+100, 10), 0, time.Time{}},
		{"segment 2 stored, the writes are in 3", busy(10, 3*seg+200, 11), 3 * seg, time.Time{}},
		{"a backlog: 3 stored at 60 s while the primary writes in 6", busy(60, 6*seg+5, 20), 4 * seg, at(10)},
		{"4 and 5 stored, still short of the position at 60 s", busy(70, 6*seg+9, 21), 6 * seg, at(10)},
		{"6 stored: every sample up to 70 s is reached", busy(80, 7*seg+1, 22), 7 * seg, at(70)},
		{"quiet since the switch: the position is the stored end", quiet(140, 8*seg, 30), 8 * seg, at(140)},
		{"only PostgreSQL's own records since, no transaction: still reached", quiet(150, 8*seg+96, 30), 8 * seg, at(150).Add(-time.Millisecond)},
		{"and again, the archive unchanged", quiet(165, 8*seg+200, 30), 8 * seg, at(165).Add(-time.Millisecond)},
		{"a transaction ran since (an id handed out): not past the stored end", quiet(180, 8*seg+400, 31), 8 * seg, at(165).Add(-time.Millisecond)},
		{"a later quiet sample after it neither", quiet(190, 8*seg+500, 31), 8 * seg, at(165).Add(-time.Millisecond)},
		{"its segment stored: reached by position", quiet(200, 9*seg, 31), 9 * seg, at(200)},
		{"a transaction running at the reached sample stops the shortcut", busy(210, 10*seg, 40), 10 * seg, at(210)},
		{"quiet after a busy reached sample: not reached past the end", quiet(220, 10*seg+50, 40), 10 * seg, at(210)},
		{"a timeline history file waiting: nothing is known", busy(230, 10*seg+70, 41), 0, at(210)},
		{"a new timeline's positions start again lower: never back", busy(240, 2*seg, 50), 0, at(210)},
	}
	for _, s := range steps {
		if got := a.observe(s.sample, s.archivedEnd); !got.Equal(s.want) {
			t.Fatalf("%s: archived through %v, want %v", s.name, got, s.want)
		}
	}
	// Writing segment 9 of timeline 2: segments 1 to 8 are complete.
	position := uint64(9*seg + 100)
	for _, c := range []struct {
		name  string
		ready []string
		want  uint64
	}{
		{"nothing waits: up to the segment being written", nil, 9 * seg},
		{"the oldest waiting segment holds it back", []string{"000000020000000000000008", "000000020000000000000007"}, 7 * seg},
		{"a waiting segment of an earlier timeline too", []string{"000000010000000000000005"}, 5 * seg},
		{"a base backup's history file and a partial segment are not replayed", []string{"000000020000000000000007.00000028.backup", "000000010000000000000006.partial"}, 9 * seg},
		{"a timeline history file waiting: nothing is known", []string{"00000002.history"}, 0},
		// Completed after the position was read: the segment being written then.
		{"a segment completed since the sample", []string{"000000020000000000000009"}, 9 * seg},
	} {
		if got := archivedEnd(position, c.ready, seg); got != c.want {
			t.Fatalf("%s: archived to %d, want %d", c.name, got, c.want)
		}
	}
	if got := archivedEnd(9*seg, nil, seg); got != 9*seg {
		t.Fatalf("at the start of segment 9: archived to %d, want %d (the samples on its boundary reached)", got, 9*seg)
	}
	if xmin, xmax, err := parseSnapshot("745:748:745,747"); err != nil || xmin != 745 || xmax != 748 {
		t.Fatalf("parseSnapshot: %d %d %v", xmin, xmax, err)
	}
	if _, _, err := parseSnapshot("745"); err == nil {
		t.Fatal("parseSnapshot accepted a non-snapshot")
	}
}

// Samples the archive does not reach are bounded; losing the oldest only delays the end.
func TestArchivedThroughKeepsBoundedSamples(t *testing.T) {
	var a archivedThrough
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		a.observe(positionSample{at: t0.Add(time.Duration(i) * time.Second), lsn: uint64(1000 + i), xmax: uint64(i + 1)}, 0)
	}
	if len(a.pending) != maxPositionSamples {
		t.Fatalf("%d samples kept, want %d", len(a.pending), maxPositionSamples)
	}
	if got := a.observe(positionSample{at: t0.Add(2000 * time.Second), lsn: 5000, xmax: 2000}, 1999); !got.Equal(t0.Add(999 * time.Second)) {
		t.Fatalf("archived through %v, want the newest reached sample's time", got)
	}
}
