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
	label, err := readBackupLabel(dataDir)
	if err != nil {
		return "", err
	}
	return startSegment(label)
}

// readBackupLabel reads the backup_label an unpacked base backup holds.
func readBackupLabel(dataDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "backup_label"))
	if err != nil {
		return nil, fmt.Errorf("the base backup has no backup_label: %w", err)
	}
	return b, nil
}

// startSegment reads the segment a backup_label's replay starts from.
func startSegment(label []byte) (string, error) {
	segment, _, err := backupStart(label)
	return segment, err
}

// backupStart reads where a backup_label's replay starts: the segment and the log position.
func backupStart(label []byte) (segment string, lsn uint64, err error) {
	m := regexp.MustCompile(`START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)`).FindSubmatch(label)
	if m == nil {
		return "", 0, fmt.Errorf("the base backup's backup_label names no start segment")
	}
	lsn, err = parseLSN(string(m[1]))
	return string(m[2]), lsn, err
}

// WALChain is what a recovery of a base backup replays: along the timelines to Timeline, up to
// the segment Last.
type WALChain struct {
	// Timeline is the one the recovery follows (recovery_target_timeline): the newest in the
	// archive that descends from the base backup's timeline after the backup's start.
	Timeline uint64
	// Last is the last segment of the chain in the archive.
	Last string
	// Segments are the chain's segments, from the base backup's start to Last.
	Segments []string
}

// CheckWALChain checks that the archive holds every segment a recovery of the base backup in
// dataDir replays, and returns the chain. A failover or a restore promotes a server on a new
// timeline, whose history file (archived with its segments) says at which position of which
// timeline it branched off. The recovery follows the newest timeline that branched off the base
// backup's timeline (or one of its descendants) after the backup's start; a timeline that
// branched before it (a restore in place to an earlier time) does not hold what the backup holds,
// and PostgreSQL's own choice, the newest timeline of all, would refuse to start. Each segment is
// read from the newest timeline on that path that had begun by it, as PostgreSQL reads them. A
// hole is an error naming the first missing segment and the ones on either side.
func CheckWALChain(ctx context.Context, archive *backup.SegmentArchive, dataDir string, segSize int64) (WALChain, error) {
	label, err := readBackupLabel(dataDir)
	if err != nil {
		return WALChain{}, err
	}
	start, startLSN, err := backupStart(label)
	if err != nil {
		return WALChain{}, err
	}
	timeline, first, _ := segmentNumber(start, segSize)
	names, err := archive.List(ctx)
	if err != nil {
		return WALChain{}, err
	}
	path, err := followTimelines(ctx, archive, names, timeline, startLSN)
	if err != nil {
		return WALChain{}, err
	}
	have := map[[2]uint64]bool{}
	var last uint64
	found := false
	for _, name := range names {
		if tl, n, ok := segmentNumber(name, segSize); ok && n >= first && tl == path.timelineOf(n, segSize) {
			have[[2]uint64{tl, n}] = true
			last, found = max(last, n), true
		}
	}
	if !found || !have[[2]uint64{path.timelineOf(first, segSize), first}] {
		return WALChain{}, fmt.Errorf("the archive does not hold %s, where the base backup's replay starts", start)
	}
	name := func(n uint64) string { return segmentName(path.timelineOf(n, segSize), n, segSize) }
	chain := WALChain{Timeline: path[len(path)-1].timeline, Last: name(last)}
	for n := first; n <= last; n++ {
		if !have[[2]uint64{path.timelineOf(n, segSize), n}] {
			return WALChain{}, fmt.Errorf("the archive is missing WAL segment %s (between %s and %s): a recovery would stop there",
				name(n), name(n-1), name(last))
		}
		chain.Segments = append(chain.Segments, name(n))
	}
	return chain, nil
}

// timelinePath is the timelines a recovery follows, oldest first, each with the position it
// began at (the previous one's switch point; 0 for the first).
type timelinePath []struct {
	timeline uint64
	begin    uint64
}

// timelineOf is the timeline a recovery reads segment n from: the newest on the path that had
// begun by n's end (the segment holding a switch point is read from the new timeline, whose copy
// holds the old one's records up to it).
func (p timelinePath) timelineOf(n uint64, segSize int64) uint64 {
	tl := p[0].timeline
	for _, t := range p[1:] {
		if t.begin/uint64(segSize) <= n {
			tl = t.timeline
		}
	}
	return tl
}

// followTimelines finds the path from the base backup's timeline (which started at startLSN) to
// the newest timeline in the archive that branched off it, or off one of its descendants, after
// startLSN. PostgreSQL numbers new timelines one past the newest history file it finds, so the
// history files of one database system are consecutive.
func followTimelines(ctx context.Context, archive *backup.SegmentArchive, names []string, base, startLSN uint64) (timelinePath, error) {
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	path := timelinePath{{timeline: base}}
	for tl := base + 1; have[fmt.Sprintf("%08X.history", tl)]; tl++ {
		history, err := readHistory(ctx, archive, tl)
		if err != nil {
			return nil, err
		}
		// The history lists every ancestor of tl with its switch point, oldest first; tl
		// descends from the backup if the backup's timeline is among them and ended after
		// the backup's start.
		var candidate timelinePath
		for i, h := range history {
			if h.timeline == base {
				if h.switchLSN <= startLSN {
					break
				}
				candidate = timelinePath{{timeline: base}}
			}
			if candidate != nil {
				next := tl // the timeline that branched off h's at its switch point
				if i+1 < len(history) {
					next = history[i+1].timeline
				}
				candidate = append(candidate, timelinePath{{timeline: next, begin: h.switchLSN}}...)
			}
		}
		if candidate != nil {
			path = candidate
		}
	}
	return path, nil
}

// WALSegmentSize is every Datafleet instance's wal_segment_size: initdb's default, which the
// agent does not change.
const WALSegmentSize = 16 << 20
