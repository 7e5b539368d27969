package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/datafleet-dev/datafleet/framework/backup"
)

// What a recovery needs of the archive: every WAL segment from the base backup's start to the
// recovery's end, without a hole. PostgreSQL, given a hole, would stop replaying at it and (with a
// target past it) fail after a long replay, or (without one) promote at it silently: a restore
// that loses data without saying so. The chain is checked before the server starts.

// walSegment is a WAL segment file name: timeline, then the segment's number in two halves.
var walSegment = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$`)

// segmentsPerLogID is how many segments of segSize bytes one "log id" (the name's middle part)
// holds: PostgreSQL numbers them 0x100000000 / segSize.
func segmentsPerLogID(segSize int64) uint64 { return uint64(0x100000000 / segSize) }

// segmentNumber reads a segment name's timeline and absolute number.
func segmentNumber(name string, segSize int64) (timeline, n uint64, ok bool) {
	m := walSegment.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, false
	}
	tl, _ := strconv.ParseUint(m[1], 16, 32)
	log, _ := strconv.ParseUint(m[2], 16, 32)
	seg, _ := strconv.ParseUint(m[3], 16, 32)
	return tl, log*segmentsPerLogID(segSize) + seg, true
}

// Superseded reports whether the WAL segment named segment comes before the segment start on
// start's timeline or an earlier one: a replay that starts at start never reads it. So does a
// base backup's history file (<segment>.<offset>.backup) or a timeline's last partial segment
// (<segment>.partial) by the segment they name. A segment of a later timeline is kept whatever its
// position (an in-place restore forks a timeline from an earlier point, whose base backups need
// it), and timeline history files (<timeline>.history) are never superseded. The names'
// fixed-width hex fields order as their positions do, whatever the segment size.
func Superseded(segment, start string) bool {
	s, b := archivedSegment.FindStringSubmatch(segment), walSegment.FindStringSubmatch(start)
	return s != nil && b != nil && s[1] <= b[1] && s[2]+s[3] < b[2]+b[3]
}

// archivedSegment is a segment's name, or a base backup's history file or a partial segment named
// after one.
var archivedSegment = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.[0-9A-F]{8}\.backup|\.partial)?$`)

func segmentName(timeline, n uint64, segSize int64) string {
	per := segmentsPerLogID(segSize)
	return fmt.Sprintf("%08X%08X%08X", timeline, n/per, n%per)
}

// backupStartSegment reads the WAL segment a base backup's replay starts from, in the
// backup_label an unpacked base backup holds.
func backupStartSegment(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "backup_label"))
	if err != nil {
		return "", fmt.Errorf("the base backup has no backup_label: %w", err)
	}
	return startSegment(b)
}

// startSegment reads the segment a backup_label's replay starts from.
func startSegment(label []byte) (string, error) {
	m := regexp.MustCompile(`START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)`).FindSubmatch(label)
	if m == nil {
		return "", fmt.Errorf("the base backup's backup_label names no start segment")
	}
	return string(m[1]), nil
}

// CheckWALChain checks that the archive holds every segment from the one the base backup in
// dataDir starts with, on its timeline, to the last one archived on it, and returns that last one.
// (Segments of later timelines, after a failover, are not followed yet.)
// A hole is an error naming the first missing segment and the ones on either side.
func CheckWALChain(ctx context.Context, archive *backup.SegmentArchive, dataDir string, segSize int64) (string, error) {
	start, err := backupStartSegment(dataDir)
	if err != nil {
		return "", err
	}
	timeline, first, _ := segmentNumber(start, segSize)
	names, err := archive.List(ctx)
	if err != nil {
		return "", err
	}
	have := map[uint64]bool{}
	var last uint64
	for _, name := range names {
		if tl, n, ok := segmentNumber(name, segSize); ok && tl == timeline && n >= first {
			have[n] = true
			last = max(last, n)
		}
	}
	if !have[first] {
		return "", fmt.Errorf("the archive does not hold %s, where the base backup's replay starts", start)
	}
	for n := first; n <= last; n++ {
		if !have[n] {
			return "", fmt.Errorf("the archive is missing WAL segment %s (between %s and %s): a recovery would stop there",
				segmentName(timeline, n, segSize), segmentName(timeline, n-1, segSize), segmentName(timeline, last, segSize))
		}
	}
	return segmentName(timeline, last, segSize), nil
}

// WALSegmentSize is every Datafleet instance's wal_segment_size: initdb's default, which the
// agent does not change.
const WALSegmentSize = 16 << 20
