package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A database's pg_dump archive is restored in three passes, so that no code a tenant defined runs
// with the superuser's privileges:
//   - pre-data (schemas, types, functions, tables, ownership, grants) as the superuser: creating
//     objects executes none of their code (the archive turns check_function_bodies off);
//   - data: COPY evaluates every CHECK constraint, domain check and generated column of the rows
//     it loads, which may call any function the table's owner chose; so each owner's tables are
//     loaded in a session that logs in as Restorer, a role without any attribute that is a member
//     of that owner only. A function that resets its role finds the Restorer, not the superuser.
//     Tables the superuser owns (the platform team's) and the other data entries (sequence
//     positions, large objects: no tenant code) load as the superuser;
//   - post-data (indexes, constraints, triggers, policies) as the superuser: PostgreSQL builds
//     indexes, checks foreign keys and refreshes materialized views as the table's owner in a
//     security-restricted context, and creates triggers without firing them.
//
// Several passes read the archive several times: it is spooled to the data volume first.

// Restorer is the role tenant-owned tables are loaded as. It exists only during a load, logs in
// only through the pod-local socket (it has no password), and once at a time.
const Restorer = "dfrestorer"

// tableData matches a TABLE DATA line of pg_restore --list: "<dump id>; <oid> <oid> TABLE DATA
// <schema> <table> <owner>", the names printed as they are (so they may contain spaces).
var tableData = regexp.MustCompile(`^(\d+); \d+ \d+ TABLE DATA (.*)$`)

// restoreArchive restores a database's archive (r) into the side database, in the passes above.
func (e *Engine) restoreArchive(ctx context.Context, conn *pgx.Conn, side string, r io.Reader) error {
	dir, spool, err := e.spool(r)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := e.pgRestore(ctx, Superuser, side, spool, "--section=pre-data"); err != nil {
		return err
	}
	owners, superuserList, err := e.dataOwners(ctx, side, spool)
	if err != nil {
		return err
	}
	if err := e.pgRestore(ctx, Superuser, side, spool, "--section=data", "--use-list="+superuserList); err != nil {
		return err
	}
	for _, owner := range slices.Sorted(maps.Keys(owners)) {
		if err := e.restoreAsOwner(ctx, conn, side, spool, owner, owners[owner]); err != nil {
			return err
		}
	}
	return e.pgRestore(ctx, Superuser, side, spool, "--section=post-data")
}

// spool copies an archive into a directory of its own on the data volume (beside PGDATA), where
// the tools can read it, and returns the directory and the archive's path.
func (e *Engine) spool(r io.Reader) (dir, archive string, err error) {
	parent := filepath.Join(filepath.Dir(e.Config.DataDir), "restore")
	if err := e.mkdir(parent); err != nil {
		return "", "", err
	}
	if dir, err = os.MkdirTemp(parent, "load-"); err != nil {
		return "", "", err
	}
	archive = filepath.Join(dir, "archive")
	f, err := os.OpenFile(archive, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = errors.Join(e.chown(dir), e.chown(archive))
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("spooling the archive: %w", err)
	}
	return dir, archive, nil
}

// dataOwners reads the archive's table of contents and sorts its TABLE DATA entries by the owner
// the table has in the side database after pre-data (the truth, rather than what the archive
// claims): owners maps each role that is not a superuser to a --use-list file of its tables;
// superuserList lists every other entry.
func (e *Engine) dataOwners(ctx context.Context, side, spool string) (owners map[string]string, superuserList string, err error) {
	out, err := e.command(ctx, "pg_restore", "--list", spool).Output()
	if err != nil {
		return nil, "", fmt.Errorf("listing the archive: %w", err)
	}
	tables, err := e.tableOwners(ctx, side)
	if err != nil {
		return nil, "", err
	}
	lists := map[string]*bytes.Buffer{}
	var rest bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := tableData.FindStringSubmatch(line)
		if m == nil {
			rest.WriteString(line + "\n")
			continue
		}
		owner, ok := tables[m[2]]
		switch {
		case !ok:
			return nil, "", fmt.Errorf("the archive has data for a table the restore did not create: %q", m[2])
		case owner == "":
			return nil, "", fmt.Errorf("the archive's data entry %q matches tables of different owners", m[2])
		case owner == Superuser:
			rest.WriteString(line + "\n")
		default:
			if lists[owner] == nil {
				lists[owner] = &bytes.Buffer{}
			}
			lists[owner].WriteString(m[1] + ";\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	written := 0
	write := func(b *bytes.Buffer) (string, error) {
		written++
		path := fmt.Sprintf("%s.list%d", spool, written)
		return path, e.writeFile(path, b.Bytes())
	}
	owners = map[string]string{}
	for owner, b := range lists {
		path, err := write(b)
		if err != nil {
			return nil, "", err
		}
		owners[owner] = path
	}
	if superuserList, err = write(&rest); err != nil {
		return nil, "", err
	}
	return owners, superuserList, nil
}

// tableOwners maps "<schema> <table> <owner>", as pg_restore --list prints a TABLE DATA entry, to
// the table's owner: Superuser for tables of any superuser, "" when two tables print alike.
func (e *Engine) tableOwners(ctx context.Context, side string) (map[string]string, error) {
	c, err := e.Connect(ctx, side)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT n.nspname, c.relname, r.rolname, r.rolsuper
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
		WHERE c.relkind IN ('r', 'p')`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var schema, table, owner string
	var super bool
	_, err = pgx.ForEachRow(rows, []any{&schema, &table, &owner, &super}, func() error {
		if super {
			owner = Superuser
		}
		// pg_restore prints a newline in a name as a space.
		key := strings.ReplaceAll(schema+" "+table+" "+owner, "\n", " ")
		if prev, seen := out[key]; seen && prev != owner {
			owner = ""
		}
		out[key] = owner
		return nil
	})
	return out, err
}

// restoreAsOwner loads one owner's tables as Restorer, a member of that owner only, and drops
// Restorer again with anything the tenant's code made it own.
func (e *Engine) restoreAsOwner(ctx context.Context, conn *pgx.Conn, side, spool, owner, list string) error {
	if err := e.dropRestorer(ctx, conn, side); err != nil {
		return err
	}
	for _, sql := range []string{
		"CREATE ROLE " + ident(Restorer) + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 1 PASSWORD NULL",
		"GRANT " + ident(owner) + " TO " + ident(Restorer),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("preparing to restore the tables of %s: %w", owner, err)
		}
	}
	err := e.pgRestore(ctx, Restorer, side, spool, "--section=data", "--use-list="+list)
	if derr := e.dropRestorer(ctx, conn, side); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("restoring the tables of %s: %w", owner, err)
	}
	return nil
}

// dropRestorer drops Restorer if it exists, with whatever it owns in the side database (only
// tenant code, run during its pass, can have made it own anything).
func (e *Engine) dropRestorer(ctx context.Context, conn *pgx.Conn, side string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", Restorer).Scan(&exists); err != nil || !exists {
		return err
	}
	if c, err := e.Connect(ctx, side); err == nil {
		_, err = c.Exec(ctx, "DROP OWNED BY "+ident(Restorer))
		c.Close(context.Background())
		if err != nil {
			return fmt.Errorf("dropping what %s owns: %w", Restorer, err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+ident(Restorer)); err != nil {
		return fmt.Errorf("dropping %s: %w", Restorer, err)
	}
	return nil
}

// pgRestore runs pg_restore on the spooled archive, logged in as user, in one transaction.
func (e *Engine) pgRestore(ctx context.Context, user, side, spool string, args ...string) error {
	args = append([]string{"--exit-on-error", "--single-transaction", "--dbname", e.connStringAs(user, side)}, args...)
	cmd := e.command(ctx, "pg_restore", append(args, spool)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_restore: %w: %s", err, toolErrors(stderr.Bytes()))
	}
	return nil
}
