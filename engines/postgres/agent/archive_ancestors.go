package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// A failover during an archiving backlog would leave a hole in the archive: replicas archive
// nothing (archive_mode "on"), so the completed segments that the lost primary had not stored yet
// (its store away, or slower than its writes) were stored by nobody, and no point after them could
// be recovered from the base backups before them. A promoted replica received those segments by
// streaming, byte for byte the primary's, and keeps them for a while (wal_keep_size, 512 MB): so
// once promoted, the agent archives the completed segments of every timeline it followed up to
// where that timeline ended. What the archive holds already costs a hash and one request (the
// archive's idempotent Put); a different segment under the same name is refused and reported, never
// overwritten. The segment in which a timeline ended is PostgreSQL's: it archives it as ".partial".
//
// archive_mode "always" (every replica archiving what it receives) would close the hole without
// this, but makes a base backup taken from a replica wait until the primary finishes its current
// segment, which an idle primary never does (docs/decisions.md).

// archiveAncestors archives the completed segments of the timelines before the current one that
// are in pg_wal and below each one's end, and returns how many it pushed (or found archived).
func (e *Engine) archiveAncestors(ctx context.Context) (int, error) {
	if e.Config.ArchiveConfig == "" {
		return 0, nil
	}
	var current string
	if err := e.queryRow(ctx, "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())", &current); err != nil {
		return 0, err
	}
	tl, _, ok := segmentNumber(current, WALSegmentSize)
	if !ok {
		return 0, fmt.Errorf("the current WAL file's name %q", current)
	}
	walDir := filepath.Join(e.Config.DataDir, "pg_wal")
	f, err := os.Open(filepath.Join(walDir, fmt.Sprintf("%08X.history", tl)))
	if errors.Is(err, os.ErrNotExist) && tl == 1 {
		return 0, nil // the first timeline has no ancestors
	}
	if err != nil {
		return 0, fmt.Errorf("timeline %d's history: %w", tl, err)
	}
	text, err := bounded.ReadAll(f, maxHistoryBytes)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("timeline %d's history: %w", tl, err)
	}
	history, err := parseHistory(tl, string(text))
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return 0, err
	}
	var files []walFile
	for _, en := range entries {
		if info, err := en.Info(); err == nil && en.Type().IsRegular() {
			files = append(files, walFile{name: en.Name(), size: info.Size()})
		}
	}
	if len(ancestorSegments(history, files, 0)) == 0 {
		return 0, nil
	}
	archive, err := backup.OpenSegmentArchive(ctx, e.Config.ArchiveConfig)
	if err != nil {
		return 0, err
	}
	defer archive.Store.Close()
	system, err := systemIdentifier(e.Config.DataDir)
	if err != nil {
		return 0, err
	}
	archive.Dir = path.Join(archive.Dir, strconv.FormatUint(system, 10))
	archived, err := archive.List(ctx)
	if err != nil {
		return 0, err
	}
	names := ancestorSegments(history, files, archiveFloor(archived))
	// Every one is tried: a segment that fails (or was removed since it was listed) does not keep
	// the others from the archive.
	var pushed int
	var failed error
	for _, name := range names {
		pushCtx, cancel := context.WithTimeout(ctx, backup.DefaultSegmentTimeout)
		err := archive.PutFile(pushCtx, name, filepath.Join(walDir, name))
		cancel()
		if err != nil {
			failed = errors.Join(failed, fmt.Errorf("segment %s: %w", name, err))
			continue
		}
		pushed++
	}
	return pushed, failed
}

// walFile is a file of pg_wal: its name and size.
type walFile struct {
	name string
	size int64
}

// ancestorSegments are the files of pg_wal to archive after a promotion whose timeline's history
// is history: each ancestor's completed segments, from where it began (its parent's end) to the
// one it ended in, excluded, and none before floor (a segment number). Other files of an
// ancestor's name are not its WAL: a segment recycled for reuse is named after one to come and
// holds old bytes; the one it ended in is PostgreSQL's to archive, as ".partial".
func ancestorSegments(history []historyEntry, files []walFile, floor uint64) []string {
	ends := map[uint64][2]uint64{}
	var begin uint64
	for _, h := range history {
		end := h.switchLSN / uint64(WALSegmentSize)
		ends[h.timeline] = [2]uint64{begin, end}
		begin = end
	}
	var names []string
	for _, f := range files {
		tl, n, ok := segmentNumber(f.name, WALSegmentSize)
		r, ancestor := ends[tl]
		if ok && ancestor && n >= r[0] && n < r[1] && n >= floor && f.size == WALSegmentSize {
			names = append(names, f.name)
		}
	}
	slices.Sort(names)
	return names
}

// archiveFloor is the number of the oldest WAL segment the archive holds, of any timeline (0 when
// it holds none): retention removed what is older, which no kept base backup needs, and pushing
// it again would put back what retention proved gone.
func archiveFloor(archived []string) uint64 {
	floor, found := uint64(0), false
	for _, name := range archived {
		if _, n, ok := segmentNumber(name, WALSegmentSize); ok && (!found || n < floor) {
			floor, found = n, true
		}
	}
	return floor
}

// archiveAncestorsAfterPromotion runs archiveAncestors once a promotion is done, in the background
// (the keeper must go back to renewing the lease), again every minute while it fails (the store
// may be what failed the old primary) for up to an hour, and logs what it did: a failure here is
// a hole in the archive unless it is mended, and the log names the segment.
func (e *Engine) archiveAncestorsAfterPromotion(logger logr.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for {
		n, err := e.archiveAncestors(ctx)
		if err == nil {
			if n > 0 {
				logger.Info("archived the previous timelines' completed segments after promotion", "segments", n)
			}
			return
		}
		logger.Error(err, "archiving the previous timelines' completed segments after promotion (retrying every minute)", "archived", n)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}
