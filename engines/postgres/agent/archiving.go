package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Continuous archiving (Config.ArchiveConfig): the primary's archive_command stores each
// completed segment through the segment archive (framework/backup.SegmentArchive), a process per
// segment, as PostgreSQL expects of it. archive_mode is "on", not "always": replicas archive
// nothing, and a promoted replica takes over on its new timeline (the history file first).

// archiveSettings are the archiving settings when the pod has an archive: archive_mode, which
// only a restart changes (the pod template carries the archive, so turning it on or off is a
// restart anyway), and the command. archive_timeout is the instance's, in the parameters file,
// so that changing it is a reload.
func (e *Engine) archiveSettings() ([]string, error) {
	if e.Config.ArchiveConfig == "" {
		return nil, nil
	}
	system, err := systemIdentifier(e.Config.DataDir)
	if err != nil {
		return nil, err
	}
	manager, err := e.manager()
	if err != nil {
		return nil, err
	}
	command := segmentCommand(manager, "push", e.Config.ArchiveConfig, strconv.FormatUint(system, 10))
	return []string{"archive_mode = 'on'", "archive_command = " + quoteSetting(command)}, nil
}

// segmentCommand is the segment archive's command (framework/backup's "segments push|fetch") as
// archive_command and restore_command run it: PostgreSQL puts the segment's name for %f and its
// path for %p.
func segmentCommand(manager, verb, config, system string) string {
	return fmt.Sprintf("%s segments %s --config %s --system %s %%f %%p", manager, verb, config, system)
}

// systemIdentifier is the database system's identifier, the first field of global/pg_control
// (in the server's byte order): initdb draws it, and every copy of that system (replicas, base
// backups, a restore from them) keeps it, so it tells one instance's archives apart from those of
// an instance deleted and made again under the same name.
func systemIdentifier(dataDir string) (uint64, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return 0, fmt.Errorf("reading the system identifier: %w", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("reading the system identifier from pg_control: %w", err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// archiveState is the archiver as pg_stat_archiver and pg_wal/archive_status see it, with the
// counters since the statistics were reset; nil when archiving is off.
type archiveState struct {
	fwagent.ArchiveStatus
	archived, failed float64
}

func (e *Engine) archiveState(ctx context.Context, conn *pgx.Conn) (*archiveState, error) {
	var mode string
	var s archiveState
	var lastArchived, lastFailed, snapshot, position *string
	var lastArchivedTime, lastFailedTime *time.Time
	var quietAt, at time.Time
	// A sample for archivedThrough, read in this order (a select list is evaluated in order): the
	// clock, the transactions' snapshot, the clock again, the write position. A replica has no
	// write position of its own.
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.current_setting('archive_mode'), archived_count::pg_catalog.float8,
		failed_count::pg_catalog.float8, last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,
		pg_catalog.clock_timestamp(),
		CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_snapshot()::pg_catalog.text END,
		pg_catalog.clock_timestamp(),
		CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn()::pg_catalog.text END
		FROM pg_catalog.pg_stat_archiver`).Scan(&mode, &s.archived, &s.failed, &lastArchived, &lastArchivedTime, &lastFailed, &lastFailedTime,
		&quietAt, &snapshot, &at, &position); err != nil {
		return nil, err
	}
	if mode == "off" {
		return nil, nil
	}
	if lastArchived != nil {
		s.LastArchived, s.LastArchivedTime = *lastArchived, lastArchivedTime
	}
	if lastFailed != nil {
		s.LastFailed, s.LastFailedTime = *lastFailed, lastFailedTime
	}
	// Listed after the sample's position was read, so that what it says of the segments before
	// that position (archivedEnd) holds for the sample.
	entries, err := os.ReadDir(filepath.Join(e.Config.DataDir, "pg_wal", "archive_status"))
	if err != nil {
		return nil, err
	}
	var ready []string
	for _, en := range entries {
		if name, ok := strings.CutSuffix(en.Name(), ".ready"); ok {
			ready = append(ready, name)
		}
	}
	s.Backlog = len(ready)
	if position != nil && snapshot != nil {
		sample := positionSample{quietAt: quietAt, at: at}
		var lsnErr, snapshotErr error
		sample.lsn, lsnErr = parseLSN(*position)
		sample.xmin, sample.xmax, snapshotErr = parseSnapshot(*snapshot)
		if lsnErr == nil && snapshotErr == nil {
			if through := e.archivedThrough.observe(sample, archivedEnd(sample.lsn, ready, WALSegmentSize)); !through.IsZero() {
				s.ArchivedThrough = &through
			}
		}
	}
	return &s, nil
}
