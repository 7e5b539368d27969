package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
)

var _ fwagent.Streamer = (*Engine)(nil)

// A dump is an archive of these parts, in this order: what each database is (owner, encoding,
// access, settings), the roles and their memberships (pg_dumpall --globals-only), one pg_dump custom
// archive per database, and the row count of every table in the snapshot each pg_dump read, which
// a load checks before it replaces anything. The maintenance database "postgres" and the
// templates are not dumped: applications' data lives in their own databases.
const (
	partDatabases = "databases.json"
	partGlobals   = "globals.sql"
	partDatabase  = "database/"
	partSummary   = "summary.json"
)

// rowCounts are the rows of each table ("schema"."table") of each database.
type rowCounts map[string]map[string]int64

// databaseInfo is what CREATE DATABASE needs to recreate a database as it was; pg_dump only
// records it with --create, which restores under the original name.
type databaseInfo struct {
	Name     string   `json:"name"`
	Owner    string   `json:"owner"`
	Encoding string   `json:"encoding"`
	Collate  string   `json:"collate"`
	Ctype    string   `json:"ctype"`
	ACL      []string `json:"acl,omitempty"`
	// Settings are the database's own (ALTER DATABASE … SET) and its roles' in it (ALTER ROLE …
	// IN DATABASE … SET), which pg_dump also records only with --create.
	Settings []databaseSetting `json:"settings,omitempty"`
}

// databaseSetting is one entry of pg_db_role_setting.setconfig ("name=value"), for the whole
// database when Role is empty.
type databaseSetting struct {
	Role    string `json:"role,omitempty"`
	Setting string `json:"setting"`
}

// Dump implements fwagent.Streamer with PostgreSQL's own tools, from this member's socket.
// pg_dump writes uncompressed (-Z0): the framework compresses the whole stream once.
func (e *Engine) Dump(ctx context.Context, w io.Writer) error {
	dbs, err := e.databases(ctx)
	if err != nil {
		return err
	}
	a := archive.NewWriter(w)
	pw, err := a.Create(partDatabases)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(pw).Encode(dbs); err != nil {
		return err
	}
	if err := e.dumpPart(ctx, a, partGlobals, "pg_dumpall", "--globals-only", "--dbname", e.connString("postgres")); err != nil {
		return err
	}
	counts := rowCounts{}
	for _, db := range dbs {
		if counts[db.Name], err = e.dumpDatabase(ctx, a, db.Name); err != nil {
			return err
		}
	}
	if pw, err = a.Create(partSummary); err != nil {
		return err
	}
	if err := json.NewEncoder(pw).Encode(counts); err != nil {
		return err
	}
	return a.Close()
}

// dumpDatabase counts the rows of every table in a snapshot and has pg_dump read that snapshot.
func (e *Engine) dumpDatabase(ctx context.Context, a *archive.Writer, database string) (map[string]int64, error) {
	conn, err := e.Connect(ctx, database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, err
	}
	counts, err := countRows(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("counting the rows of database %s: %w", database, err)
	}
	return counts, e.dumpPart(ctx, a, partDatabase+database, "pg_dump", "--format=custom", "--compress=0",
		"--snapshot="+snapshot, "--dbname", e.connString(database))
}

// countRows counts the rows of every user table (partitions and their parents both).
func countRows(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := q.QueryRow(ctx, "SELECT pg_catalog.count(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

func (e *Engine) databases(ctx context.Context) ([]databaseInfo, error) {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT datname, pg_catalog.pg_get_userbyid(datdba), pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype,
		COALESCE(datacl::pg_catalog.text[], '{}') FROM pg_catalog.pg_database WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres'
		AND datname NOT LIKE 'dfrestore\_%' AND datname NOT LIKE 'dfreplaced\_%' ORDER BY datname`)
	if err != nil {
		return nil, err
	}
	dbs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (databaseInfo, error) {
		var d databaseInfo
		err := r.Scan(&d.Name, &d.Owner, &d.Encoding, &d.Collate, &d.Ctype, &d.ACL)
		return d, err
	})
	if err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, `SELECT d.datname, COALESCE(pg_catalog.pg_get_userbyid(NULLIF(s.setrole, 0)), ''), c.setting
		FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase, pg_catalog.unnest(s.setconfig) WITH ORDINALITY c(setting, n)
		ORDER BY d.datname, s.setrole <> 0, 2, c.n`)
	if err != nil {
		return nil, err
	}
	settings := map[string][]databaseSetting{}
	var database string
	var s databaseSetting
	if _, err := pgx.ForEachRow(rows, []any{&database, &s.Role, &s.Setting}, func() error {
		settings[database] = append(settings[database], s)
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range dbs {
		dbs[i].Settings = settings[dbs[i].Name]
	}
	return dbs, nil
}

// dumpPart runs a dump tool with its output piped into a new part of the archive.
func (e *Engine) dumpPart(ctx context.Context, a *archive.Writer, part, tool string, args ...string) error {
	pw, err := a.Create(part)
	if err != nil {
		return err
	}
	cmd := e.command(ctx, tool, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s of %s: %w: %s", tool, part, err, toolErrors(stderr.Bytes()))
	}
	return nil
}
