package agent

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datafleet-dev/datafleet/framework/primary"
)

// position is where this member's WAL is, as the operator's election compares members: a
// timeline and a position on it. A primary reads both from its insert position. A replica asks
// itself over the replication protocol (IDENTIFY_SYSTEM, as Patroni does), which answers with the
// timeline it has replayed into and how far it holds WAL on that timeline, received or replayed,
// whether or not its WAL receiver is connected. SQL has no other replica timeline than the WAL
// receiver's, gone when the primary is (which is when there is an election), and the control
// file's, which is the timeline of the last restartpoint: with it a member that had made one
// since the last failover beat a member that had made none, however far behind it was, and the
// commits only the other held were lost.
func (e *Engine) position(ctx context.Context, conn *pgx.Conn, inRecovery bool) (primary.Position, error) {
	if !inRecovery {
		var file string
		var offset uint64
		if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_walfile_name(l), (l OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8
			FROM pg_catalog.pg_current_wal_lsn() l`).Scan(&file, &offset); err != nil {
			return primary.Position{}, err
		}
		// A segment file's name begins with its timeline, in eight hexadecimal digits.
		if len(file) < 8 {
			return primary.Position{}, fmt.Errorf("not a WAL file name: %q", file)
		}
		tli, err := strconv.ParseUint(file[:8], 16, 32)
		if err != nil {
			return primary.Position{}, fmt.Errorf("not a WAL file name: %q", file)
		}
		return primary.Position{History: tli, Offset: offset}, nil
	}
	local, err := e.replicationConnect(ctx)
	if err != nil {
		return primary.Position{}, err
	}
	defer local.Close(context.Background())
	p, err := identifySystem(ctx, local)
	if err != nil {
		return primary.Position{}, err
	}
	return primary.Position{History: uint64(p.timeline), Offset: p.lsn}, nil
}

// walPosition is where a server's WAL is, as IDENTIFY_SYSTEM reports it: a primary's timeline
// and flush position; a standby's replay timeline and how far it holds WAL on it (its received
// position when that is on the same timeline and further, else its replay position).
type walPosition struct {
	system   string
	timeline uint32
	lsn      uint64
}

// replicationConnect opens a replication connection (one that also takes SQL) to this member's
// own postgres through the Unix socket, as the superuser with the sessionSettings.
func (e *Engine) replicationConnect(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = e.Config.SocketDir, uint16(e.Config.Port), Superuser, "postgres"
	cfg.RuntimeParams = maps.Clone(sessionSettings)
	cfg.RuntimeParams["replication"] = "database"
	return pgconn.ConnectConfig(ctx, cfg)
}

func identifySystem(ctx context.Context, c *pgconn.PgConn) (walPosition, error) {
	rows, err := c.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return walPosition{}, err
	}
	if len(rows) != 1 || len(rows[0].Rows) != 1 || len(rows[0].Rows[0]) < 3 {
		return walPosition{}, fmt.Errorf("IDENTIFY_SYSTEM: unexpected answer")
	}
	row := rows[0].Rows[0]
	tli, err := strconv.ParseUint(string(row[1]), 10, 32)
	if err != nil {
		return walPosition{}, fmt.Errorf("IDENTIFY_SYSTEM: timeline: %w", err)
	}
	lsn, err := parseLSN(string(row[2]))
	if err != nil {
		return walPosition{}, fmt.Errorf("IDENTIFY_SYSTEM: position: %w", err)
	}
	return walPosition{system: string(row[0]), timeline: uint32(tli), lsn: lsn}, nil
}
