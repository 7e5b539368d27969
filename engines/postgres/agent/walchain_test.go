package agent

import "testing"

// Segment names count across a log id: with 16 MiB segments, ...000000FF is followed by the next
// log id's ...00000000, not by a gap.
func TestSegmentNumbersCrossALogID(t *testing.T) {
	for _, c := range []struct{ name, next string }{
		{"000000010000000000000001", "000000010000000000000002"},
		{"0000000100000000000000FF", "000000010000000100000000"},
		{"00000003000000A2000000FF", "00000003000000A300000000"},
	} {
		tl, n, ok := segmentNumber(c.name, WALSegmentSize)
		if !ok {
			t.Fatalf("%s does not parse", c.name)
		}
		if got := segmentName(tl, n+1, WALSegmentSize); got != c.next {
			t.Errorf("after %s: %s, want %s", c.name, got, c.next)
		}
	}
	for _, bad := range []string{"00000001.history", "000000010000000000000001.partial", "0000000100000000000000", "00000001000000000000000g"} {
		if _, _, ok := segmentNumber(bad, WALSegmentSize); ok {
			t.Errorf("%q parsed as a segment", bad)
		}
	}
}

// Retention removes a segment only when it comes before a base backup's start on the same or an
// earlier timeline, and a base backup's history file or a partial segment by the segment it names;
// later timelines and timeline history files stay.
func TestSuperseded(t *testing.T) {
	const start = "000000020000000100000010"
	for _, c := range []struct {
		segment string
		want    bool
	}{
		{"00000002000000010000000F", true},
		{"000000010000000000000FFF", true},  // an earlier log id on an earlier timeline
		{"0000000100000001000000FF", false}, // after the start, earlier timeline: a restore past the fork may read it
		{"000000020000000100000010", false}, // the start itself
		{"000000020000000100000011", false},
		{"000000030000000000000001", false}, // a later timeline (an in-place restore's fork)
		{"00000002.history", false},
		{"00000001.history", false},
		{"00000002000000010000000F.partial", true},
		{"00000002000000010000000F.00000028.backup", true},
		{"000000020000000100000010.00000028.backup", false}, // the start's own backup label
		{"00000002000000010000000F.backup", false},          // not a name PostgreSQL archives
		{"00000002000000010000000F.partial.gz", false},
	} {
		if got := Superseded(c.segment, start); got != c.want {
			t.Errorf("Superseded(%s, %s) = %v, want %v", c.segment, start, got, c.want)
		}
	}
	if Superseded("000000010000000000000001", "not a segment") {
		t.Error("a start that is not a segment superseded a segment")
	}
}
