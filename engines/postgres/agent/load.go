package agent

import (
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

	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/names"
)

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

// operatorRole reports roles a restore must not touch: the superuser, replication user,
// Restorer and Monitor the agent relies on (the agent makes them; an archive giving Monitor a
// password or settings would let it log in over the network or steer the agent's own queries),
// and binding users, whose passwords belong to their bindings' Secrets (the bindings of the
// restored instance create their own).
func operatorRole(role string) bool {
	return role == Superuser || role == ReplicationUser || role == Restorer || role == Monitor || strings.HasPrefix(role, names.UserPrefix)
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

// inUse reports PostgreSQL's "database is being accessed by other users".
func inUse(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55006"
}
