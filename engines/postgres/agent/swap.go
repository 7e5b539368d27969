package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Swapping a restored side database in is three renames that cannot be one transaction (a
// database is renamed only without sessions, and not in a transaction): the original stops taking
// connections and is renamed aside, the side database takes its name, the copy aside is dropped. A
// crash between two of them would leave no database of that name, or one that refuses
// connections. So each swap is written to a journal in the maintenance database first (it
// replicates with the rest, so a new primary finds it too) and removed when done; recoverSwaps
// finishes or undoes any swap left in it, before the next restore and when an agent becomes
// primary: the original comes back if it was renamed aside and the side database had not taken
// its place, and otherwise the side database (whose every table was counted) stays.

// swapJournal is the journal's table; the schema is the superuser's, out of every binding's reach
// (the maintenance database is never a binding's).
const swapJournal = "datafleet.swaps"

func ensureSwapJournal(ctx context.Context, conn *pgx.Conn) error {
	for _, sql := range []string{"CREATE SCHEMA IF NOT EXISTS datafleet AUTHORIZATION " + ident(Superuser),
		"REVOKE ALL ON SCHEMA datafleet FROM PUBLIC",
		"CREATE TABLE IF NOT EXISTS " + swapJournal + " (name text PRIMARY KEY)"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("the swap journal: %w", err)
		}
	}
	return nil
}

// swapStep is one statement (or one retried group) of a swap; a crash can fall between two.
type swapStep func(ctx context.Context, conn *pgx.Conn) error

// swapSteps are the steps that rename a restored side database over the original (if any): the
// journal entry, new connections to the original refused, its sessions ended and it renamed aside
// (again while a client reconnects in between), the side database renamed, the copy aside dropped,
// the journal entry removed.
func swapSteps(d databaseInfo) []swapStep {
	side, replaced := sideName(restorePrefix, d.Name), sideName(replacedPrefix, d.Name)
	exec := func(sql string, args ...any) swapStep {
		return func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, sql, args...)
			return err
		}
	}
	return []swapStep{
		exec("INSERT INTO "+swapJournal+" (name) VALUES ($1) ON CONFLICT DO NOTHING", d.Name),
		exec("DROP DATABASE IF EXISTS " + ident(replaced) + " WITH (FORCE)"),
		func(ctx context.Context, conn *pgx.Conn) error {
			if ok, err := databaseExists(ctx, conn, d.Name); err != nil || !ok {
				return err
			}
			return exec("ALTER DATABASE "+ident(d.Name)+" WITH ALLOW_CONNECTIONS false")(ctx, conn)
		},
		func(ctx context.Context, conn *pgx.Conn) error {
			if ok, err := databaseExists(ctx, conn, d.Name); err != nil || !ok {
				return err
			}
			var err error
			for attempt := 0; attempt < 20; attempt++ {
				if _, err = conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()", d.Name); err != nil {
					return err
				}
				if _, err = conn.Exec(ctx, "ALTER DATABASE "+ident(d.Name)+" RENAME TO "+ident(replaced)); err == nil || !inUse(err) {
					return err
				}
				time.Sleep(250 * time.Millisecond)
			}
			return err
		},
		exec("ALTER DATABASE " + ident(side) + " RENAME TO " + ident(d.Name)),
		exec("DROP DATABASE IF EXISTS " + ident(replaced) + " WITH (FORCE)"),
		exec("DELETE FROM "+swapJournal+" WHERE name = $1", d.Name),
	}
}

// swapIn runs the swap's steps; on a failure it undoes what it did (recoverSwaps with the side
// database given up), so the original stays as it was. The journal exists: Load ran recoverSwaps,
// which makes it, before anything was restored.
func swapIn(ctx context.Context, conn *pgx.Conn, d databaseInfo) error {
	for _, step := range swapSteps(d) {
		if err := step(ctx, conn); err != nil {
			if rerr := recoverSwap(context.WithoutCancel(ctx), conn, d.Name, false); rerr != nil {
				err = errors.Join(err, fmt.Errorf("and undoing it: %w", rerr))
			}
			return fmt.Errorf("replacing database %s: %w", d.Name, err)
		}
	}
	return nil
}

// recoverSwaps finishes or undoes every swap in the journal (see above).
func recoverSwaps(ctx context.Context, conn *pgx.Conn) error {
	if err := ensureSwapJournal(ctx, conn); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT name FROM "+swapJournal+" ORDER BY name")
	if err != nil {
		return err
	}
	pending, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range pending {
		if err := recoverSwap(ctx, conn, name, true); err != nil {
			return fmt.Errorf("finishing the interrupted restore of database %s: %w", name, err)
		}
	}
	return nil
}

// recoverSwap brings one interrupted swap to a database of that name that takes connections: the
// original renamed back if the side database had not taken its place; else the side database
// renamed in if keepSide (it was checked whole before the swap began) and there is no original;
// then the leftovers dropped and the journal entry removed.
func recoverSwap(ctx context.Context, conn *pgx.Conn, name string, keepSide bool) error {
	side, replaced := sideName(restorePrefix, name), sideName(replacedPrefix, name)
	exists := func(db string) bool {
		ok, err := databaseExists(ctx, conn, db)
		return err == nil && ok
	}
	var sql []string
	switch {
	case !exists(name) && exists(replaced):
		sql = append(sql, "ALTER DATABASE "+ident(replaced)+" RENAME TO "+ident(name))
	case !exists(name) && exists(side) && keepSide:
		sql = append(sql, "ALTER DATABASE "+ident(side)+" RENAME TO "+ident(name))
	}
	// Whatever of the two did not take the name goes.
	sql = append(sql, "ALTER DATABASE "+ident(name)+" WITH ALLOW_CONNECTIONS true",
		"DROP DATABASE IF EXISTS "+ident(replaced)+" WITH (FORCE)", "DROP DATABASE IF EXISTS "+ident(side)+" WITH (FORCE)")
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil && !(isUndefinedDatabase(err) && !exists(name)) {
			return err
		}
	}
	_, err := conn.Exec(ctx, "DELETE FROM "+swapJournal+" WHERE name = $1", name)
	return err
}

// isUndefinedDatabase reports PostgreSQL's invalid_catalog_name: no such database.
func isUndefinedDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "3D000"
}

func databaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", name).Scan(&ok)
	return ok, err
}

// recoverSwapsOnPrimary runs recoverSwaps once this member is the primary (the journal
// replicates: a replica promoted after a crash finds the swap its old primary left), retrying
// until it succeeds.
func (e *Engine) recoverSwapsOnPrimary(ctx context.Context) {
	for {
		conn, err := e.primaryConn(ctx)
		if err == nil {
			err = recoverSwaps(ctx, conn)
			conn.Close(context.Background())
			if err == nil {
				return
			}
			log.FromContext(ctx).Error(err, "finishing an interrupted restore")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
