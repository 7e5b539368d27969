package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// A replica that replayed past the point where the primary's timeline forked off its own can
// never follow that primary: postgres logs "new timeline N forked off current database system
// timeline M before current recovery point" and its WAL receiver retries for ever. It happens when
// a member starts while no primary answers (rejoin cannot rewind then) and the member elected
// afterwards had not received this member's last asynchronous records. Only pg_rewind, which runs
// before postgres starts, brings it back; divergence tells Follow when that is needed, by the
// same comparison Patroni makes: the primary's timeline history against this member's replay
// position, both read over the replication protocol.

// divergence returns why this replica cannot follow the current primary without a rewind, or ""
// when it can (or when what decides it cannot be read: then the caller goes on as before).
func (e *Engine) divergence(ctx context.Context) (string, error) {
	local, err := e.replicationConnect(ctx)
	if err != nil {
		return "", err
	}
	defer local.Close(context.Background())
	mine, err := identifySystem(ctx, local)
	if err != nil {
		return "", err
	}
	rows, err := local.Exec(ctx, "SELECT pg_catalog.pg_last_wal_replay_lsn()").ReadAll()
	if err != nil {
		return "", err
	}
	replayed, err := parseLSN(string(firstValue(rows)))
	if err != nil {
		return "", fmt.Errorf("this member's replay position: %w", err)
	}

	source, err := pgconn.Connect(ctx, e.sourceConnString()+" replication=database")
	if err != nil {
		return "", err
	}
	defer source.Close(context.Background())
	theirs, err := identifySystem(ctx, source)
	if err != nil {
		return "", err
	}
	if theirs.system != mine.system {
		return fmt.Sprintf("the primary is another database system (%s, this member's is %s)", theirs.system, mine.system), nil
	}
	var history string
	if theirs.timeline > 1 {
		rows, err := source.Exec(ctx, fmt.Sprintf("TIMELINE_HISTORY %d", theirs.timeline)).ReadAll()
		if err != nil {
			return "", err
		}
		if len(rows) != 1 || len(rows[0].Rows) != 1 || len(rows[0].Rows[0]) != 2 {
			return "", fmt.Errorf("TIMELINE_HISTORY %d: unexpected answer", theirs.timeline)
		}
		history = string(rows[0].Rows[0][1])
	}
	return forkedBefore(theirs.timeline, history, mine.timeline, replayed)
}

// forkedBefore compares a replica on timeline mine, replayed up to replayed, with a primary on
// timeline theirs whose history file is history (empty for timeline 1). The replica can follow
// when it is on the primary's timeline, or on one of its ancestors no further than where the
// primary's line left it; otherwise the primary's history forked off before this replay point.
func forkedBefore(theirs uint32, history string, mine uint32, replayed uint64) (string, error) {
	if theirs == mine {
		return "", nil
	}
	entries, err := parseHistory(uint64(theirs), history)
	if err != nil {
		return "", err
	}
	for _, h := range entries {
		if h.timeline != uint64(mine) {
			continue
		}
		if replayed > h.switchLSN {
			return fmt.Sprintf("the primary's timeline %d forked off timeline %d at %s, before this member's replay position %s",
				theirs, mine, formatLSN(h.switchLSN), formatLSN(replayed)), nil
		}
		return "", nil
	}
	return fmt.Sprintf("this member's timeline %d is not in the history of the primary's timeline %d", mine, theirs), nil
}

// parseLSN reads a WAL position written as two hexadecimal halves, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

func formatLSN(p uint64) string { return fmt.Sprintf("%X/%X", p>>32, uint32(p)) }

func firstValue(rows []*pgconn.Result) []byte {
	if len(rows) == 0 || len(rows[0].Rows) == 0 || len(rows[0].Rows[0]) == 0 {
		return nil
	}
	return rows[0].Rows[0][0]
}
