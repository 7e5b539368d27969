package agent

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the archive is known to hold, by the database's clock (ArchiveStatus.ArchivedThrough).
// pg_stat_archiver says which segment was stored last and when, but a segment stored at a time
// may have been completed long before it (a backlog, a slow store): the transactions committed
// after its end are not in the archive, and a restore to a time after them that trusted the
// storing time would replay less than it says. So each time the agent reads the archiver (every
// status and metrics scrape) it also samples the primary's write position and its transactions
// with the database's clock, and the archive holds every transaction committed up to:
//
//   - the newest sample whose position the stored segments reach (archivedEnd): a commit stamped
//     before a sample's time was written before its position;
//   - past it, while no transaction that writes has run since: a sample with no such transaction
//     running and no transaction id handed out since that reached sample (which had none running
//     either) has had no commit written after the reached position. A database that is quiet
//     but for the records PostgreSQL writes on its own (a checkpoint, the running transactions'
//     list), which never fill a segment nor make archive_timeout switch one, is archived up to
//     its last sample that way; by positions alone it would never be.

// positionSample is the primary at a moment: its transactions' snapshot (xmin, xmax) read after
// the time quietAt and before the time at, and its write position (LSN) read after at.
type positionSample struct {
	quietAt    time.Time
	xmin, xmax uint64
	at         time.Time
	lsn        uint64
}

// quiet reports whether no transaction that writes (one with an id) ran at the sample.
func (s positionSample) quiet() bool { return s.xmin == s.xmax }

// maxPositionSamples bounds the samples kept while the archive has not reached them: past it the
// oldest go, which only makes ArchivedThrough later to move, never wrong.
const maxPositionSamples = 64

// archivedThrough follows the samples for one primary's agent.
type archivedThrough struct {
	mu      sync.Mutex
	pending []positionSample // not reached by the archive yet, oldest first
	reached *positionSample  // the newest sample the archive reached
	through time.Time
}

// observe records a sample and returns the newest time up to which every transaction is in the
// archive (zero: none known yet), given that the archive holds the log up to the position
// archivedEnd (0: nothing known).
func (a *archivedThrough) observe(s positionSample, archivedEnd uint64) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.pending); n == 0 || s.lsn >= a.pending[n-1].lsn {
		a.pending = append(a.pending, s)
	} else {
		// A new timeline's positions, or a restart: start again.
		a.pending, a.reached = []positionSample{s}, nil
	}
	if len(a.pending) > maxPositionSamples {
		a.pending = a.pending[len(a.pending)-maxPositionSamples:]
	}
	n := 0
	for n < len(a.pending) && archivedEnd > 0 && a.pending[n].lsn <= archivedEnd {
		a.reach(a.pending[n], a.pending[n].at)
		n++
	}
	// Past the reached position, as long as nothing wrote a transaction since.
	for r := a.reached; r != nil && r.quiet() && n < len(a.pending) && a.pending[n].quiet() && a.pending[n].xmax == r.xmax; n++ {
		a.reach(a.pending[n], a.pending[n].quietAt)
	}
	a.pending = a.pending[n:]
	return a.through
}

// reach records that the archive holds every transaction committed by at, as of sample s.
func (a *archivedThrough) reach(s positionSample, at time.Time) {
	a.reached = &s
	if at.After(a.through) {
		a.through = at
	}
}

// parseSnapshot reads the xmin and xmax of a pg_snapshot's text ("xmin:xmax:xip,...").
func parseSnapshot(s string) (xmin, xmax uint64, err error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return 0, 0, fmt.Errorf("not a snapshot: %q", s)
	}
	if xmin, err = strconv.ParseUint(parts[0], 10, 64); err == nil {
		xmax, err = strconv.ParseUint(parts[1], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("not a snapshot: %q", s)
	}
	return xmin, xmax, nil
}

// archivedEnd is how far the archive holds the log, by pg_wal/archive_status as listed after a
// sample's position was read: every completed segment (those before the one being written at
// position) that is not waiting (.ready) is stored, and the archiver stores them in order, so the
// archive holds the log up to the oldest waiting segment, or up to the segment being written. A
// segment of an earlier timeline that waits holds log a restore replays on the way (before the
// fork): it counts too. A timeline history file waiting holds the log back entirely: a recovery
// cannot follow the timeline before it is stored. Base backup history files and partial segments
// are not replayed: they do not count. The name of the file stored last would not do: a base
// backup's history file (<segment>.<offset>.backup) is stored after the segment it names and the
// segments up to the backup's end, and says nothing of how far they reach; and it is forgotten at
// every restart.
func archivedEnd(position uint64, ready []string, segSize int64) uint64 {
	end := position / uint64(segSize) * uint64(segSize)
	for _, name := range ready {
		if timelineHistory.MatchString(name) {
			return 0
		}
		if _, n, ok := segmentNumber(name, segSize); ok && n*uint64(segSize) < end {
			end = n * uint64(segSize)
		}
	}
	return end
}

// timelineHistory is a timeline history file's name.
var timelineHistory = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
