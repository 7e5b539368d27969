package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// login connects over TCP with a password, as an application does.
func login(e *Engine, user, password, database string) (*pgx.Conn, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: fmt.Sprintf("127.0.0.1:%d", e.Config.Port),
		Path: "/" + database, RawQuery: "sslmode=disable&connect_timeout=5"}
	return pgx.Connect(context.Background(), u.String())
}

func mustLogin(t *testing.T, e *Engine, user, password, database string) *pgx.Conn {
	t.Helper()
	conn, err := login(e, user, password, database)
	if err != nil {
		t.Fatalf("%s cannot log in to %q: %v", user, database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func ensure(t *testing.T, e *Engine, user, password string, role v1alpha1.BindingRole, database string) {
	t.Helper()
	err := e.Act(context.Background(), ActionEnsureUser, url.Values{ParamUser: {user}, ParamVerifier: {Verifier(user, password)},
		ParamRole: {string(role)}, ParamDatabase: {database}})
	if err != nil {
		t.Fatal(err)
	}
}

func drop(t *testing.T, e *Engine, stem string, keep ...string) {
	t.Helper()
	if err := e.Act(context.Background(), ActionDropUsers, url.Values{ParamStem: {stem}, ParamKeep: keep}); err != nil {
		t.Fatal(err)
	}
}

// refusedPrivilege says whether err is PostgreSQL's insufficient_privilege.
func refusedPrivilege(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// Users of each role against a real PostgreSQL: what they may do, with a database name made to
// look like SQL, rotation through a second user, and dropping that keeps the data.
func TestBindingUsers(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	stem := names.UserStem("apps", "orders")
	writer, reader, admin := stem+"_0", names.UserStem("apps", "report")+"_0", names.UserStem("apps", "dba")+"_0"
	ensure(t, e, writer, "w-secret", v1alpha1.RoleReadWrite, "app")
	ensure(t, e, reader, "r-secret", v1alpha1.RoleReadOnly, "app")
	ensure(t, e, admin, "a-secret", v1alpha1.RoleAdmin, "app")

	t.Run("readWrite creates and writes; its tables belong to the database's writers", func(t *testing.T) {
		w := mustLogin(t, e, writer, "w-secret", "app")
		for _, sql := range []string{"CREATE TABLE orders (id int PRIMARY KEY, what text)", "INSERT INTO orders VALUES (1, 'one'), (2, 'two')"} {
			if _, err := w.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		var owner string
		if err := w.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'").Scan(&owner); err != nil || owner != DatabaseRole("app", v1alpha1.RoleReadWrite) {
			t.Fatalf("orders is owned by %q (%v), want the writers' group", owner, err)
		}
	})

	t.Run("readOnly reads and is refused writes", func(t *testing.T) {
		r := mustLogin(t, e, reader, "r-secret", "app")
		var n int
		if err := r.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
			t.Fatalf("readOnly read %d rows: %v", n, err)
		}
		for _, sql := range []string{"INSERT INTO orders VALUES (3, 'three')", "DELETE FROM orders", "CREATE TABLE mine (id int)"} {
			if _, err := r.Exec(ctx, sql); !refusedPrivilege(err) {
				t.Errorf("readOnly %q: %v, want insufficient_privilege", sql, err)
			}
		}
	})

	t.Run("admin owns the database: it creates schemas and can drop the writers' tables", func(t *testing.T) {
		a := mustLogin(t, e, admin, "a-secret", "app")
		for _, sql := range []string{"CREATE SCHEMA reporting", "CREATE TABLE reporting.daily (day date)", "INSERT INTO orders VALUES (3, 'three')",
			"ALTER TABLE orders ADD COLUMN note text"} {
			if _, err := a.Exec(ctx, sql); err != nil {
				t.Fatalf("admin %s: %v", sql, err)
			}
		}
	})

	t.Run("a binding of another database cannot reach this one", func(t *testing.T) {
		other := names.UserStem("apps", "other") + "_0"
		ensure(t, e, other, "o-secret", v1alpha1.RoleReadOnly, "other")
		mustLogin(t, e, other, "o-secret", "other")
		if conn, err := login(e, other, "o-secret", "app"); err == nil {
			conn.Close(ctx)
			t.Fatal("a reader of database other connected to app")
		}
	})

	t.Run("a database named like SQL is created with exactly that name", func(t *testing.T) {
		hostile := `x"; DROP DATABASE app; --`
		user := names.UserStem("apps", "hostile") + "_0"
		ensure(t, e, user, "h'secret", v1alpha1.RoleReadWrite, hostile)
		c := mustLogin(t, e, user, "h'secret", hostile)
		var name string
		if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil || name != hostile {
			t.Fatalf("connected to %q: %v", name, err)
		}
		if got := query(t, e, "SELECT count(*)::text FROM pg_database WHERE datname IN ('app', 'postgres')"); got != "2" {
			t.Fatalf("databases app and postgres: %s of 2 left", got)
		}
	})

	t.Run("ensuring a user that is up to date writes nothing", func(t *testing.T) {
		before := query(t, e, "SELECT xmin::text FROM pg_authid WHERE rolname = '"+writer+"'")
		ensure(t, e, writer, "w-secret", v1alpha1.RoleReadWrite, "app")
		if after := query(t, e, "SELECT xmin::text FROM pg_authid WHERE rolname = '"+writer+"'"); after != before {
			t.Fatalf("the role was rewritten: xmin %s -> %s", before, after)
		}
	})

	t.Run("rotation: both users work until the old one is dropped; the data stays", func(t *testing.T) {
		next := stem + "_1"
		ensure(t, e, next, "w-secret-2", v1alpha1.RoleReadWrite, "app")
		old := mustLogin(t, e, writer, "w-secret", "app")
		mustLogin(t, e, next, "w-secret-2", "app")
		// Something the old user owns itself, outside its group's session role.
		for _, sql := range []string{"RESET ROLE", "CREATE TABLE owned_by_login (id int)"} {
			if _, err := old.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		drop(t, e, stem, next)
		if conn, err := login(e, writer, "w-secret", "app"); err == nil {
			conn.Close(ctx)
			t.Fatal("the dropped user still logs in")
		}
		n := mustLogin(t, e, next, "w-secret-2", "app")
		var count int
		if err := n.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&count); err != nil || count != 3 {
			t.Fatalf("after the rotation the new user reads %d rows: %v", count, err)
		}
		var owner string
		if err := n.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_login'").Scan(&owner); err != nil ||
			owner != DatabaseRole("app", v1alpha1.RoleReadWrite) {
			t.Fatalf("the dropped user's table went to %q (%v)", owner, err)
		}
	})

	t.Run("dropping every user of a binding leaves other bindings and the data", func(t *testing.T) {
		drop(t, e, stem)
		if got := query(t, e, "SELECT count(*)::text FROM pg_roles WHERE starts_with(rolname, '"+stem+"')"); got != "0" {
			t.Fatalf("%s users left", got)
		}
		r := mustLogin(t, e, reader, "r-secret", "app")
		var count int
		if err := r.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&count); err != nil || count != 3 {
			t.Fatalf("the reader reads %d rows: %v", count, err)
		}
	})

	t.Run("only binding users are touched", func(t *testing.T) {
		for _, err := range []error{
			e.Act(ctx, ActionDropUsers, url.Values{ParamStem: {"postgres"}}),
			e.Act(ctx, ActionEnsureUser, url.Values{ParamUser: {"postgres"}, ParamVerifier: {Verifier("postgres", "x")}, ParamRole: {"admin"}, ParamDatabase: {"app"}}),
		} {
			if err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("want a refusal, got %v", err)
			}
		}
	})
}

// The agent refuses reserved databases itself, whatever the operator asks (a stale binding, an
// operator without the check): no user and no group is created.
func TestReservedDatabasesRefusedByTheAgent(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	user := names.UserStem("apps", "sneaky") + "_0"
	for _, db := range []string{"postgres", "template1", "dfrestore_app"} {
		err := e.Act(context.Background(), ActionEnsureUser, url.Values{ParamUser: {user}, ParamVerifier: {Verifier(user, "secret")},
			ParamRole: {string(v1alpha1.RoleAdmin)}, ParamDatabase: {db}})
		if err == nil || !strings.Contains(err.Error(), "is reserved") {
			t.Errorf("database %s: %v", db, err)
		}
	}
	if got := query(t, e, "SELECT count(*)::text FROM pg_roles WHERE rolname LIKE 'sb\\_%' OR rolname LIKE 'dfdb\\_%'"); got != "0" {
		t.Errorf("%s roles were created", got)
	}
}

// With every statement logged (log_statement = all, allowed to instance owners), the password
// verifiers of binding users and of the replication user never reach the server's log, while
// the agent's other statements do.
func TestPasswordVerifiersStayOutOfTheLog(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	if err := os.WriteFile(e.Config.ParametersFile, []byte("logging_collector = on\nlog_statement = 'all'\nlog_min_duration_statement = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, e)
	user := names.UserStem("apps", "logged") + "_0"
	ensure(t, e, user, "l-secret", v1alpha1.RoleReadWrite, "app")
	testenv.Eventually(t, time.Minute, func() error {
		files, _ := filepath.Glob(filepath.Join(e.Config.DataDir, "log", "*"))
		var log []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			log = append(log, b...)
		}
		if i := bytes.Index(log, []byte("SCRAM-SHA-256$")); i >= 0 {
			t.Fatalf("a password verifier is in the server's log: %s", log[max(0, i-200):i+20])
		}
		if !bytes.Contains(log, []byte("REVOKE CONNECT")) {
			return fmt.Errorf("the agent's statements are not logged yet (%d bytes of log)", len(log))
		}
		return nil
	})
}

// Group names hold 24 characters of the database's name and 32 bits of its hash; these two names,
// found by a birthday search, give the same groups. Namespace shared-prefix-for-groups owns the
// first, namespace shared may bind the second (it starts with "shared_"). The groups serve the
// database that has them first: the second binding is refused, and nobody reaches the first
// database's rows through it.
func TestCollidingGroupNamesAreRefused(t *testing.T) {
	const victim, attacker = "shared-prefix-for-groups_41004", "shared_prefix_for_groups_99923"
	if DatabaseRole(victim, v1alpha1.RoleAdmin) != DatabaseRole(attacker, v1alpha1.RoleAdmin) {
		t.Fatalf("the names no longer collide (%s, %s): find two that do", DatabaseRole(victim, v1alpha1.RoleAdmin), DatabaseRole(attacker, v1alpha1.RoleAdmin))
	}
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	owner := names.UserStem("shared-prefix-for-groups", "app") + "_0"
	ensure(t, e, owner, "o-secret", v1alpha1.RoleReadWrite, victim)
	if _, err := mustLogin(t, e, owner, "o-secret", victim).Exec(ctx, "CREATE TABLE secrets AS SELECT 'the victim''s row' AS what"); err != nil {
		t.Fatal(err)
	}
	thief := names.UserStem("shared", "thief") + "_0"
	for _, role := range v1alpha1.BindingRoles() {
		err := e.Act(ctx, ActionEnsureUser, url.Values{ParamUser: {thief}, ParamVerifier: {Verifier(thief, "t-secret")},
			ParamRole: {string(role)}, ParamDatabase: {attacker}})
		if err == nil || !strings.Contains(err.Error(), "already serve another database") {
			t.Errorf("a %s binding on %s, whose groups are %s's: %v", role, attacker, victim, err)
		}
	}
	if got := query(t, e, "SELECT count(*)::text FROM pg_roles WHERE rolname = '"+thief+"'"); got != "0" {
		t.Errorf("the colliding binding's user exists")
	}
	if got := query(t, e, "SELECT count(*)::text FROM pg_database WHERE datname = '"+attacker+"'"); got != "0" {
		t.Errorf("the colliding database was created")
	}
	if c, err := login(e, thief, "t-secret", victim); err == nil {
		var what string
		err = c.QueryRow(ctx, "SELECT what FROM secrets").Scan(&what)
		c.Close(ctx)
		t.Errorf("the colliding binding's user logs in to %s (reading: %q, %v)", victim, what, err)
	}
}

// While a restore runs (here: one whose archive has not arrived yet), binding actions are
// refused at once with ErrBusy instead of waiting for it, so the operator's binding workers move
// on to other instances (review M7); once it has ended they run again.
func TestBindingActionsAreRefusedAtOnceDuringARestore(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	pr, pw := io.Pipe()
	loaded := make(chan error, 1)
	go func() {
		_, err := e.Load(ctx, pr)
		loaded <- err
	}()
	user := names.UserStem("apps", "orders") + "_0"
	act := func() error {
		done := make(chan error, 1)
		go func() {
			done <- e.Act(ctx, ActionEnsureUser, url.Values{ParamUser: {user}, ParamVerifier: {Verifier(user, "secret")},
				ParamRole: {string(v1alpha1.RoleReadWrite)}, ParamDatabase: {"app"}})
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("a binding action waited for the restore")
			return nil
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := act(); !errors.Is(err, ErrBusy) {
			return fmt.Errorf("during the restore: %v, want ErrBusy", err)
		}
		return nil
	})
	pw.CloseWithError(errors.New("the archive stopped"))
	if err := <-loaded; err == nil {
		t.Fatal("a restore of a cut archive succeeded")
	}
	if err := act(); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
}
