package agent

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/datafleet-dev/datafleet/framework/backup"
)

// A timeline's history file (<timeline>.history, in pg_wal and in the archive) lists every
// ancestor of the timeline, oldest first, with the position where the next one branched off it:
// "1\t0/3000060\tno recovery target specified".

// historyEntry is a line of a timeline history file: a timeline and where it ended.
type historyEntry struct {
	timeline, switchLSN uint64
}

// parseHistory reads the history file of timeline tl. Its ancestors and their switch points must
// follow each other, as PostgreSQL writes them.
func parseHistory(tl uint64, text string) ([]historyEntry, error) {
	var out []historyEntry
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline %d's history: malformed line %q", tl, line)
		}
		parent, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("timeline %d's history: %w", tl, err)
		}
		lsn, err := parseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline %d's history: %w", tl, err)
		}
		if parent >= tl || len(out) > 0 && (parent <= out[len(out)-1].timeline || lsn < out[len(out)-1].switchLSN) {
			return nil, fmt.Errorf("timeline %d's history: its timelines or switch points do not follow each other at %q", tl, line)
		}
		out = append(out, historyEntry{timeline: parent, switchLSN: lsn})
	}
	return out, nil
}

// maxHistoryBytes bounds a history file's read from a store: each line is one ancestor, a few
// dozen bytes.
const maxHistoryBytes = 1 << 20

// readHistory reads timeline tl's history file from the archive.
func readHistory(ctx context.Context, archive *backup.SegmentArchive, tl uint64) ([]historyEntry, error) {
	name := fmt.Sprintf("%08X.history", tl)
	var buf boundedBuffer
	if err := archive.Get(ctx, name, &buf); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return parseHistory(tl, buf.String())
}

// boundedBuffer is a buffer that refuses more than maxHistoryBytes.
type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxHistoryBytes {
		return 0, fmt.Errorf("a history file of more than %d bytes", maxHistoryBytes)
	}
	return b.Buffer.Write(p)
}
