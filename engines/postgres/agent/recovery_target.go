package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/backup"
)

// A recovery to a time stops before the first transaction that ended after it (a commit or an
// abort: the records recovery_target_time is compared with), and PostgreSQL (13 and later) will
// not end a recovery that never passed its target: "recovery ended before configured recovery
// target was reached", on every start, with a standby's promotion too. An archive whose last
// transaction ended at or before the target (a quiet database, a target in the archive's last
// seconds) holds the state at the target at its end, so the recovery replays it to its end
// instead. That is right only when the archive is known to hold every transaction up to the
// target (RecoveryConfig.TargetArchived, from the source's recoverable window): otherwise the
// target stays, and a recovery short of it fails rather than claiming it.

// maxScannedSegments bounds how many of the chain's last segments are read for its newest
// transaction: a database writes its log mostly in transactions, so the last segment nearly
// always holds one, and a chain with none in so many leaves the target to PostgreSQL.
const maxScannedSegments = 16

// transactionEnd is a commit or an abort as pg_waldump describes it, with its time in UTC (the
// command runs with TZ=UTC); a prepared transaction's has its id before the time.
var transactionEnd = regexp.MustCompile(`desc: (?:COMMIT|ABORT)(?:_PREPARED)? (?:\d+: )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC`)

// waldumpEnded is how pg_waldump ends a segment whose last record goes on in the next one, or
// the end of what was written: what it printed before stands.
var waldumpEnded = regexp.MustCompile(`error in WAL record|could not find file`)

// recoveryStop returns the time a recovery to target stops at: target itself, or the zero time
// (the archive's end) when the chain's newest transaction ended at or before it.
func (e *Engine) recoveryStop(ctx context.Context, archive *backup.SegmentArchive, chain WALChain, target time.Time) (time.Time, error) {
	last, err := e.lastTransactionEnd(ctx, archive, chain.Segments)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the archive's last transaction: %w", err)
	}
	if last.IsZero() || last.After(target) {
		return target, nil
	}
	return time.Time{}, nil
}

// lastTransactionEnd returns when the newest transaction in the last maxScannedSegments of
// segments (oldest first) ended, reading them from newest to oldest until one has a transaction
// (zero: none had).
func (e *Engine) lastTransactionEnd(ctx context.Context, archive *backup.SegmentArchive, segments []string) (time.Time, error) {
	dir, err := os.MkdirTemp(filepath.Dir(e.Config.DataDir), ".waldump-")
	if err != nil {
		return time.Time{}, err
	}
	defer os.RemoveAll(dir)
	if err := agentruntime.Chown(dir, e.Config.Credential); err != nil {
		return time.Time{}, err
	}
	for i := len(segments) - 1; i >= 0 && i >= len(segments)-maxScannedSegments; i-- {
		last, err := e.segmentTransactionEnd(ctx, archive, dir, segments[i])
		if err != nil || !last.IsZero() {
			return last, err
		}
	}
	return time.Time{}, nil
}

// segmentTransactionEnd fetches one segment into dir and returns when its newest transaction
// ended (zero: it has none).
func (e *Engine) segmentTransactionEnd(ctx context.Context, archive *backup.SegmentArchive, dir, name string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, backup.DefaultSegmentTimeout) // as the fetch's own
	defer cancel()
	path := filepath.Join(dir, name) // pg_waldump reads the timeline and position from the name
	defer os.Remove(path)
	err := archive.Fetch(ctx, name, path)
	if err == nil {
		err = agentruntime.Chown(path, e.Config.Credential)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("fetching %s: %w", name, err)
	}
	cmd := e.command(ctx, "pg_waldump", "--rmgr=Transaction", path)
	cmd.Env = append(cmd.Env, "TZ=UTC")
	var stderr bytes.Buffer // pg_waldump stops at its first error: a line
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return time.Time{}, err
	}
	if err := cmd.Start(); err != nil {
		return time.Time{}, err
	}
	// Read line by line, keeping only the newest time: a segment is the store's (tenant input),
	// and one full of tiny transactions would print tens of megabytes.
	var last time.Time
	var parseErr error
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		m := transactionEnd.FindSubmatch(lines.Bytes())
		if m == nil || parseErr != nil {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05.999999999", string(m[1]))
		if err != nil {
			parseErr = fmt.Errorf("pg_waldump %s: a transaction's time %q: %w", name, m[1], err)
		}
		if at.After(last) {
			last = at
		}
	}
	_, _ = io.Copy(io.Discard, out) // a line past the scanner's limit: the rest is drained
	err = cmd.Wait()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || !waldumpEnded.Match(stderr.Bytes())) {
		return time.Time{}, fmt.Errorf("pg_waldump %s: %v: %s", name, err, toolErrors(stderr.Bytes()))
	}
	return last, parseErr
}
