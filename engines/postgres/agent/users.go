package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

var _ fwagent.Actor = (*Engine)(nil)

// Actions the operator asks the primary's agent for.
const (
	ActionEnsureUser = "ensure-user"
	ActionDropUsers  = "drop-users"
)

// Parameters of the actions.
const (
	ParamUser     = "user"
	ParamVerifier = "verifier"
	ParamRole     = "role"
	ParamDatabase = "database"
	ParamStem     = "stem"
	ParamKeep     = "keep"
)

// ErrBusy is Act's answer while a restore holds the users (it may take hours): at once, so that
// the operator's binding worker moves on to other instances and comes back later, rather than
// waiting here (review M7).
var ErrBusy = errors.New("a restore is running on this instance: binding users are managed again once it has finished")

// Act implements fwagent.Actor. Binding users (and a drill's markers, markers.go) are managed
// through the superuser's Unix socket on the primary, one action at a time; while a restore runs,
// not at all (ErrBusy).
func (e *Engine) Act(ctx context.Context, action string, p url.Values) error {
	if action == primary.ActionConfirm { // answered at once, whatever else runs
		if e.Config.Lease == nil {
			return errors.New("a standalone primary confirms no other")
		}
		return e.Config.Lease.Confirm(p.Get(primary.ParamHolder))
	}
	if e.restoring.Load() > 0 {
		return ErrBusy
	}
	e.usersMu.Lock()
	defer e.usersMu.Unlock()
	switch action {
	case ActionEnsureUser:
		return e.ensureUser(ctx, p.Get(ParamUser), p.Get(ParamVerifier), v1alpha1.BindingRole(p.Get(ParamRole)), p.Get(ParamDatabase))
	case ActionDropUsers:
		return e.dropUsers(ctx, p.Get(ParamStem), p[ParamKeep])
	case ActionWriteMarker:
		before, err := optionalTime(p.Get(ParamBefore))
		if err != nil {
			return err
		}
		after, err := optionalTime(p.Get(ParamAfter))
		if err != nil {
			return err
		}
		return e.writeMarker(ctx, p.Get(ParamMarker), before, after)
	case ActionCheckMarkers:
		return e.checkMarkers(ctx, p[ParamPresent], p[ParamAbsent])
	}
	return fmt.Errorf("unknown action %q", action)
}

// DatabaseRole is the group role through which users of a role reach a database:
// dfdb_<database>_<hash>_{owner,writer,reader}. Users log in as themselves and act as the group
// (their session's role is set to it), so what one binding creates belongs to the group: other
// bindings of the database keep their access when it is dropped or rotated.
func DatabaseRole(database string, role v1alpha1.BindingRole) string {
	sum := sha256.Sum256([]byte(database))
	suffix := map[v1alpha1.BindingRole]string{v1alpha1.RoleAdmin: "owner", v1alpha1.RoleReadWrite: "writer", v1alpha1.RoleReadOnly: "reader"}[role]
	return "dfdb_" + names.Slug(database, 24) + "_" + hex.EncodeToString(sum[:])[:8] + "_" + suffix
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes a string constant (standard_conforming_strings is on since PostgreSQL 9.1).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ReservedDatabases are the databases no binding may be granted: the maintenance database, where
// the agent's and the replication user's own sessions run, and the templates every new database
// is copied from. Neither may a binding take the names of a restore's side databases
// (ReservedPrefixes), which a restore drops and renames.
var (
	ReservedDatabases = []string{"postgres", "template0", "template1"}
	ReservedPrefixes  = []string{restorePrefix, replacedPrefix}
)

// CheckDatabase refuses a database no binding may be granted, saying why.
func CheckDatabase(database string) error {
	switch {
	case database == "":
		return errors.New("no database named")
	case slices.Contains(ReservedDatabases, database):
		return fmt.Errorf("database %q is reserved: PostgreSQL's maintenance database and templates are the operator's, never a binding's", database)
	}
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(database, p) {
			return fmt.Errorf("database %q is reserved: names starting with %q are the operator's restore databases", database, p)
		}
	}
	return nil
}

// ensureUser makes the login role with the verifier, a member of the database's group for the
// role, with its session role set to that group; the database and its groups are created first
// if absent. A role already so is left untouched: nothing is written.
func (e *Engine) ensureUser(ctx context.Context, user, verifier string, role v1alpha1.BindingRole, database string) error {
	if !strings.HasPrefix(user, names.UserPrefix) || !strings.HasPrefix(verifier, "SCRAM-SHA-256$") {
		return fmt.Errorf("refusing user %q on database %q: not a binding user with a SCRAM verifier", user, database)
	}
	if err := CheckDatabase(database); err != nil {
		return fmt.Errorf("refusing user %q: %w", user, err)
	}
	if !slices.Contains(v1alpha1.BindingRoles(), role) {
		return fmt.Errorf("unknown role %q", role)
	}
	conn, err := e.primaryConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The verifier is in this session's statements and parameters: none of them is logged.
	for _, sql := range unlogged {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	group := DatabaseRole(database, role)
	var done bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_authid u JOIN pg_auth_members m ON m.member = u.oid
		JOIN pg_roles g ON g.oid = m.roleid WHERE u.rolname = $1 AND u.rolpassword = $2 AND u.rolcanlogin AND g.rolname = $3)
		AND EXISTS (SELECT 1 FROM pg_database WHERE datname = $4)`, user, verifier, group, database).Scan(&done)
	if err != nil || done {
		return err
	}
	if err := e.ensureDatabase(ctx, conn, database); err != nil {
		return err
	}
	// One transaction: a login role exists only complete, with its group and session role.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, user).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, sql := range []string{
			fmt.Sprintf("%s ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %s", verb, ident(user), literal(verifier)),
			fmt.Sprintf("GRANT %s TO %s", ident(group), ident(user)),
			fmt.Sprintf("ALTER ROLE %s SET role = %s", ident(user), literal(group)),
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", strings.SplitN(sql, " PASSWORD ", 2)[0], err)
			}
		}
		return nil
	})
}

// ensureDatabase creates the database's three groups and the database (owned by the owner group)
// if absent, and grants each group its privileges: readers read every table, writers also write
// and create in schema public, the owner owns the database. Default privileges extend this to
// tables the owner and writers create later. PUBLIC loses CONNECT, so a binding of another
// database cannot reach this one.
func (e *Engine) ensureDatabase(ctx context.Context, conn *pgx.Conn, database string) error {
	owner, writer, reader := DatabaseRole(database, v1alpha1.RoleAdmin), DatabaseRole(database, v1alpha1.RoleReadWrite), DatabaseRole(database, v1alpha1.RoleReadOnly)
	if err := checkGroupsFree(ctx, conn, database, owner); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, g := range []string{owner, writer, reader} {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s NOLOGIN; END IF; END$$`,
				literal(g), ident(g))); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", ident(writer), ident(owner)))
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the groups of database %s: %w", database, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		// CREATE DATABASE cannot run in a transaction; a crash after it finds the database next time.
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident(database), ident(owner))); err != nil {
			return fmt.Errorf("creating database: %w", err)
		}
	}
	db, err := e.Connect(ctx, database)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	d, o, w, r := ident(database), ident(owner), ident(writer), ident(reader)
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		for _, sql := range []string{
			"REVOKE CONNECT, TEMPORARY ON DATABASE " + d + " FROM PUBLIC",
			"GRANT ALL ON DATABASE " + d + " TO " + o,
			"GRANT CONNECT, TEMPORARY ON DATABASE " + d + " TO " + w + ", " + r,
			"GRANT USAGE ON SCHEMA public TO " + r,
			"GRANT USAGE, CREATE ON SCHEMA public TO " + w + ", " + o,
			"GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + r,
			"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public TO " + w,
			"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO " + r,
			"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO " + w,
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + ", " + w + " GRANT SELECT ON TABLES TO " + r,
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + ", " + w + " GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLES TO " + w,
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + ", " + w + " GRANT SELECT ON SEQUENCES TO " + r,
			"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + ", " + w + " GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO " + w,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
		return nil
	})
}

// checkGroupsFree refuses groups that already serve another database. Their names hold 24
// characters and 32 bits of a hash of the database's name, so two names can share them (a
// birthday search finds such a pair in a second, and one namespace's own names can be made to
// share another's). The groups serve the database their owner group owns first; the binding of the
// other is refused, without naming the database it collides with (the message reaches the binding).
// A restore's side databases, owned by the same group, are the same database's.
func checkGroupsFree(ctx context.Context, conn *pgx.Conn, database, owner string) error {
	var taken bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r ON r.oid = d.datdba
		WHERE r.rolname = $1 AND d.datname <> $2 AND NOT pg_catalog.starts_with(d.datname::pg_catalog.text, $3)
		AND NOT pg_catalog.starts_with(d.datname::pg_catalog.text, $4))`, owner, database, restorePrefix, replacedPrefix).Scan(&taken)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("database %q cannot be created: its groups (%s and the others) already serve another database whose name shares their first 24 characters and hash; name it differently", database, owner)
	}
	return nil
}

// dropUsers drops the binding's login roles (named stem_<n>) not in keep: their sessions are
// ended, what they own in any database is handed to their group, their grants go, then the role.
func (e *Engine) dropUsers(ctx context.Context, stem string, keep []string) error {
	if !strings.HasPrefix(stem, names.UserPrefix) {
		return fmt.Errorf("refusing to drop users of %q: not a binding's stem", stem)
	}
	conn, err := e.primaryConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT rolname FROM pg_catalog.pg_roles WHERE pg_catalog.starts_with(rolname::pg_catalog.text, $1) ORDER BY rolname`, stem+"_")
	if err != nil {
		return err
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	rows, err = conn.Query(ctx, `SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname`)
	if err != nil {
		return err
	}
	databases, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, u := range users {
		if !names.IsUserOf(stem, u) || slices.Contains(keep, u) {
			continue
		}
		heir := Superuser
		if err := conn.QueryRow(ctx, `SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
			JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY g.rolname LIMIT 1`, u).Scan(&heir); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := conn.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = $1`, u); err != nil {
			return err
		}
		for _, d := range databases {
			if err := e.disown(ctx, d, u, heir); err != nil {
				return fmt.Errorf("handing %s's objects in %s to %s: %w", u, d, heir, err)
			}
		}
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident(u)); err != nil {
			return fmt.Errorf("dropping %s: %w", u, err)
		}
	}
	return nil
}

// disown hands what user owns in the database to heir and revokes user's privileges there.
func (e *Engine) disown(ctx context.Context, database, user, heir string) error {
	db, err := e.Connect(ctx, database)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "REASSIGN OWNED BY "+ident(user)+" TO "+ident(heir)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DROP OWNED BY "+ident(user))
		return err
	})
}

// primaryConn connects as the superuser, on the primary only: a replica cannot write roles.
func (e *Engine) primaryConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	var replica bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&replica); err != nil || replica {
		conn.Close(context.Background())
		if err == nil {
			err = errors.New("this member is not the primary")
		}
		return nil, err
	}
	return conn, nil
}
