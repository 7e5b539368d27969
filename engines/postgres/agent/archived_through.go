package agent

import (
	"sync"
	"time"
)

// What the archive is known to hold, by the database's clock (ArchiveStatus.ArchivedThrough).
// pg_stat_archiver says which segment was stored last and when, but a segment stored at a time
// may have been completed long before it (a backlog, a slow store): the transactions committed
// after its end are not in the archive, and a restore to a time after them that trusted the
// storing time would replay less than it says. So each time the agent reads the archiver (every
// status and metrics scrape) it also samples the primary's write position with the database's
// clock, and the archive holds every transaction committed up to the newest sample whose position
// the stored segments reach: PostgreSQL stores a timeline's segments in order. A database that
// wrote nothing since its last segment was switched out (a quiet one, after archive_timeout) is
// archived up to the sample itself.

// positionSample is the primary's write position (LSN) at a time by its clock.
type positionSample struct {
	at  time.Time
	lsn uint64
}

// maxPositionSamples bounds the samples kept while the archive has not reached them: past it the
// oldest go, which only makes ArchivedThrough later to move, never wrong.
const maxPositionSamples = 64

// archivedThrough follows the samples for one primary's agent.
type archivedThrough struct {
	mu      sync.Mutex
	pending []positionSample // not reached by the archive yet, oldest first
	through time.Time
}

// observe records a sample and returns the newest time up to which every transaction is in the
// archive (zero: none known yet), given that the archive holds the current timeline's log up to
// the position archivedEnd (0: it holds none of this timeline yet). A sample's position is read
// after its time, so a commit stamped at or before that time is before that position.
func (a *archivedThrough) observe(s positionSample, archivedEnd uint64) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.pending); n == 0 || s.lsn >= a.pending[n-1].lsn {
		a.pending = append(a.pending, s)
	} else {
		a.pending = []positionSample{s} // a new timeline's positions, or a restart: start again
	}
	if len(a.pending) > maxPositionSamples {
		a.pending = a.pending[len(a.pending)-maxPositionSamples:]
	}
	reached := 0
	for reached < len(a.pending) && archivedEnd > 0 && a.pending[reached].lsn <= archivedEnd {
		if at := a.pending[reached].at; at.After(a.through) {
			a.through = at
		}
		reached++
	}
	a.pending = a.pending[reached:]
	return a.through
}

// segmentEnd is the position just past the WAL segment named name when it is a segment of the
// timeline (a history file, a backup's history file, a partial segment or another timeline's
// segment: 0).
func segmentEnd(name string, timeline uint64, segSize int64) uint64 {
	tl, n, ok := segmentNumber(name, segSize)
	if !ok || tl != timeline {
		return 0
	}
	return (n + 1) * uint64(segSize)
}
