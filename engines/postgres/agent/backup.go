package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/names"
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

// Load implements fwagent.Streamer on the primary. Roles come first (those the operator owns are
// left alone); each database is restored into a side database, and only once the whole archive
// has been read and restored are the side databases renamed over the originals. A failure
// anywhere before that leaves the existing data as it was.
func (e *Engine) Load(ctx context.Context, r io.Reader) (string, error) {
	e.restoring.Add(1)
	defer e.restoring.Add(-1)
	e.usersMu.Lock()
	defer e.usersMu.Unlock()
	conn, err := e.primaryConn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	// A restore interrupted in its swap (the agent killed, the pod deleted) is finished or undone
	// before another begins.
	if err := recoverSwaps(ctx, conn); err != nil {
		return "", err
	}

	a := archive.NewReader(r)
	infos := map[string]databaseInfo{}
	// restored are side databases not yet swapped in; any left when Load returns are dropped, on
	// a connection of their own: a cancelled request may have closed conn.
	var restored []databaseInfo
	defer func() {
		if len(restored) == 0 {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		c, err := e.Connect(cctx, "postgres")
		if err != nil {
			return
		}
		defer c.Close(cctx)
		for _, d := range restored {
			_, _ = c.Exec(cctx, "DROP DATABASE IF EXISTS "+ident(sideName(restorePrefix, d.Name))+" WITH (FORCE)")
		}
	}()
	settable, err := userSettings(ctx, conn)
	if err != nil {
		return "", err
	}
	var summary string
	var globals *globalsPlan
	err = a.Each(func(name string, part io.Reader) error {
		switch {
		case name == partDatabases:
			var dbs []databaseInfo
			if err := json.NewDecoder(part).Decode(&dbs); err != nil {
				return fmt.Errorf("%s: %w", partDatabases, err)
			}
			for _, d := range dbs {
				infos[d.Name] = d
			}
		case name == partGlobals:
			var err error
			if globals, err = readGlobals(part, settable); err != nil {
				return err
			}
			return globals.createRoles(ctx, conn)
		case strings.HasPrefix(name, partDatabase):
			d, ok := infos[strings.TrimPrefix(name, partDatabase)]
			if !ok {
				return fmt.Errorf("the archive has %s but does not describe that database", name)
			}
			restored = append(restored, d)
			return e.restoreSide(ctx, conn, d, part)
		case name == partSummary:
			var want rowCounts
			if err := json.NewDecoder(part).Decode(&want); err != nil {
				return fmt.Errorf("%s: %w", partSummary, err)
			}
			var err error
			summary, err = e.checkCounts(ctx, restored, want)
			return err
		default:
			return fmt.Errorf("the archive has an unknown part %q", name)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if summary == "" {
		return "", fmt.Errorf("the archive has no %s to check the restore against", partSummary)
	}
	// Roles' attributes, passwords and memberships, then settings, go on once the data is
	// checked, before any swap: a setting like default_transaction_read_only would have stopped
	// pg_restore, and a failure here still leaves every original database as it was.
	if globals != nil {
		if err := globals.apply(ctx, conn); err != nil {
			return "", err
		}
		if len(globals.skipped) > 0 {
			summary += "; left out of the roles: " + strings.Join(slices.Compact(globals.skipped), ", ")
		}
	}
	var applied int
	var unknown []string
	for _, d := range restored {
		n, u, err := applySettings(ctx, conn, d, settable)
		if err != nil {
			return "", err
		}
		applied, unknown = applied+n, append(unknown, u...)
	}
	if applied > 0 {
		summary += fmt.Sprintf("; %d database settings", applied)
	}
	if len(unknown) > 0 {
		summary += "; left out, as this server has no such setting or role, or not every user may set it: " + strings.Join(unknown, ", ")
	}
	for len(restored) > 0 {
		if err := swapIn(ctx, conn, restored[0]); err != nil {
			return "", err
		}
		restored = restored[1:]
	}
	return summary, nil
}

// checkCounts compares the restored side databases' tables and rows with the dump's.
func (e *Engine) checkCounts(ctx context.Context, restored []databaseInfo, want rowCounts) (string, error) {
	if len(restored) != len(want) {
		return "", fmt.Errorf("the dump counted %d databases but %d were restored", len(want), len(restored))
	}
	var tables, rows int64
	for _, d := range restored {
		conn, err := e.Connect(ctx, sideName(restorePrefix, d.Name))
		if err != nil {
			return "", err
		}
		got, err := countRows(ctx, conn)
		conn.Close(context.Background())
		if err != nil {
			return "", err
		}
		w := want[d.Name]
		for t, n := range w {
			if got[t] != n {
				return "", fmt.Errorf("restored database %s has %d rows in %s; the dump had %d", d.Name, got[t], t, n)
			}
			tables, rows = tables+1, rows+n
		}
		if len(got) != len(w) {
			return "", fmt.Errorf("restored database %s has %d tables; the dump had %d", d.Name, len(got), len(w))
		}
	}
	return fmt.Sprintf("restored %d databases, %d tables, %d rows, each table's rows counted as in the dump", len(restored), tables, rows), nil
}

// A restore's side databases: the restored copy of each database, and the copy it replaced until
// that is dropped. No binding may name a database so (ReservedPrefixes).
const (
	restorePrefix  = "dfrestore_"
	replacedPrefix = "dfreplaced_"
)

// sideName is a deterministic name for a database's restore or replaced copy.
func sideName(prefix, database string) string {
	h := sha256.Sum256([]byte(database))
	return prefix + hex.EncodeToString(h[:8])
}

// operatorRole reports roles a restore must not touch: the superuser, replication user and
// Restorer the agent relies on, and binding users, whose passwords belong to their bindings' Secrets (the
// bindings of the restored instance create their own).
func operatorRole(role string) bool {
	return role == Superuser || role == ReplicationUser || role == Restorer || strings.HasPrefix(role, names.UserPrefix)
}

// cutIdent reads one SQL identifier, quoted or not, from the start of s.
func cutIdent(s string) (ident, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		id, n, ok := unquote(s, '"')
		if !ok {
			return "", s, false
		}
		return id, s[n:], true
	}
	end := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == ';' || r == ',' })
	if end <= 0 {
		return "", s, false
	}
	return s[:end], s[end:], true
}

// restoreSide restores one database's pg_dump archive into its side database, created afresh as
// the original was (owner, encoding, locale, access), in the passes of restoreArchive.
func (e *Engine) restoreSide(ctx context.Context, conn *pgx.Conn, d databaseInfo, r io.Reader) error {
	side := sideName(restorePrefix, d.Name)
	owner := d.Owner
	if owner == "" || operatorRole(owner) && owner != Superuser {
		owner = Superuser
	}
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + ident(side) + " WITH (FORCE)",
		fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
			ident(side), ident(owner), literal(d.Encoding), literal(d.Collate), literal(d.Ctype)),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("restoring database %s: %w", d.Name, err)
		}
	}
	if len(d.ACL) > 0 {
		if err := grantACL(ctx, conn, side, d.ACL); err != nil {
			return fmt.Errorf("restoring access to database %s: %w", d.Name, err)
		}
	}
	if err := e.restoreArchive(ctx, conn, side, r); err != nil {
		return fmt.Errorf("restoring database %s: %w", d.Name, err)
	}
	return nil
}

// grantACL recreates a database's access from its aclitem list (grantee=privileges/grantor);
// grants to operator roles are skipped: binding users get theirs from their bindings.
func grantACL(ctx context.Context, conn *pgx.Conn, database string, acl []string) error {
	privileges := map[byte]string{'C': "CREATE", 'c': "CONNECT", 'T': "TEMPORARY"}
	stmts := []string{"REVOKE ALL ON DATABASE " + ident(database) + " FROM PUBLIC"}
	for _, item := range acl {
		grantee, rest := "PUBLIC", item
		if !strings.HasPrefix(item, "=") {
			g, r, ok := cutIdentUntil(item, '=')
			if !ok {
				return fmt.Errorf("unreadable access entry %q", item)
			}
			grantee, rest = g, r
		}
		rest = strings.TrimPrefix(rest, "=")
		privs, _, _ := strings.Cut(rest, "/")
		if grantee != "PUBLIC" && operatorRole(grantee) && grantee != Superuser {
			continue
		}
		to := "PUBLIC"
		if grantee != "PUBLIC" {
			to = ident(grantee)
		}
		for i := 0; i < len(privs); i++ {
			p, ok := privileges[privs[i]]
			if !ok {
				continue
			}
			withGrant := ""
			if i+1 < len(privs) && privs[i+1] == '*' {
				withGrant = " WITH GRANT OPTION"
			}
			stmts = append(stmts, "GRANT "+p+" ON DATABASE "+ident(database)+" TO "+to+withGrant)
		}
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// applySettings gives a restored side database its settings and its roles' settings in it. A
// setting this server does not know (a restore onto a newer major version that removed it), or
// that not every user may set (settable: session_preload_libraries loads code into every
// session, the agent's included), is left out and named, without its value, rather than failing
// the restore of the data. Settings of operator roles are not the backup's to restore.
func applySettings(ctx context.Context, conn *pgx.Conn, d databaseInfo, settable map[string]bool) (applied int, unknown []string, err error) {
	side := ident(sideName(restorePrefix, d.Name))
	for _, s := range d.Settings {
		target := "ALTER DATABASE " + side
		if s.Role != "" {
			if !restorable(s.Role) {
				continue
			}
			target = "ALTER ROLE " + ident(s.Role) + " IN DATABASE " + side
		}
		sql, ok := setSQL(target, s.Setting)
		if !ok {
			return applied, unknown, fmt.Errorf("database %s has an unreadable setting", d.Name)
		}
		name, _, _ := strings.Cut(s.Setting, "=")
		if !settable[strings.ToLower(name)] {
			if s.Role != "" {
				name += " of role " + s.Role
			}
			unknown = append(unknown, name+" in database "+d.Name)
			continue
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42704" && pe.Code != "22023" {
				return applied, unknown, fmt.Errorf("restoring a setting of database %s: %w", d.Name, err)
			}
			name, _, _ := strings.Cut(s.Setting, "=")
			if s.Role != "" {
				name += " of role " + s.Role
			}
			unknown = append(unknown, name+" in database "+d.Name)
			continue
		}
		applied++
	}
	return applied, unknown, nil
}

// setSQL is "<target> SET name TO value" for a setting as pg_db_role_setting stores it
// ("name=value"). List-valued settings are stored with their elements quoted as identifiers
// ("$user", public) and are given back element by element, as pg_dump does; any other value is
// one string constant.
func setSQL(target, setting string) (string, bool) {
	name, value, ok := strings.Cut(setting, "=")
	if !ok || name == "" {
		return "", false
	}
	values := []string{value}
	if gucListQuote[strings.ToLower(name)] {
		if values, ok = splitGUCList(value); !ok {
			return "", false
		}
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = literal(v)
	}
	if len(quoted) == 0 {
		quoted = []string{"''"}
	}
	return target + " SET " + ident(name) + " TO " + strings.Join(quoted, ", "), true
}

// gucListQuote are the settings whose elements PostgreSQL quotes as identifiers (GUC_LIST_QUOTE),
// the list pg_dump keeps too.
var gucListQuote = map[string]bool{
	"local_preload_libraries": true, "search_path": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "temp_tablespaces": true, "unix_socket_directories": true,
}

// splitGUCList splits a stored list setting into its elements, unquoting quoted ones.
func splitGUCList(v string) ([]string, bool) {
	const space = " \t\n\r\f\v"
	s := strings.TrimLeft(v, space)
	var out []string
	for s != "" {
		if strings.HasPrefix(s, `"`) {
			id, rest, ok := cutIdent(s)
			if !ok {
				return nil, false
			}
			out, s = append(out, id), rest
		} else {
			end := strings.IndexAny(s, ","+space)
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return nil, false
			}
			out, s = append(out, s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, space)
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		if s = strings.TrimLeft(s[1:], space); s == "" {
			return nil, false
		}
	}
	return out, true
}

// cutIdentUntil reads an aclitem's grantee: quoted like an identifier when it needs to be.
func cutIdentUntil(s string, sep byte) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		id, rest, ok := cutIdent(s)
		return id, rest, ok && strings.HasPrefix(rest, string(sep))
	}
	i := strings.IndexByte(s, sep)
	if i <= 0 {
		return "", s, false
	}
	return s[:i], s[i:], true
}

// inUse reports PostgreSQL's "database is being accessed by other users".
func inUse(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55006"
}
