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
