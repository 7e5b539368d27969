package agent

import (
	"context"
	"io"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// hostile is the body of every function a tenant plants below: whoever calls it fails, and the
// error names the role it ran as.
const hostile = `LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'tenant code ran as %', current_user; END$$`

// Tenants' functions, operators' look-alikes and database settings against the agent's superuser
// sessions, on a real PostgreSQL: nothing a tenant defines runs as the superuser (the
// CVE-2018-1058 pattern: a function whose argument types match better than the built-in's, or a
// schema put before pg_catalog with ALTER DATABASE … SET search_path), and nothing a database's
// owner sets (read-only, timeouts, a role) stops the agent's work for the other tenants: user
// drops, rotations, backups and status probes.
func TestTenantObjectsNeverRunAsTheSuperuser(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	admin := names.UserStem("apps", "dba")
	ensure(t, e, admin+"_0", "a-secret", v1alpha1.RoleAdmin, "app")
	shop := names.UserStem("shop", "orders")
	ensure(t, e, shop+"_0", "s-secret", v1alpha1.RoleReadWrite, "shop")
	ensure(t, e, shop+"_1", "s-secret", v1alpha1.RoleReadWrite, "shop")

	// Database postgres: a function matching starts_with(name, …) better than pg_catalog's, in
	// public, where a binding on database postgres could once create it (given here directly).
	execSQL(t, e, "GRANT CREATE ON SCHEMA public TO "+ident(DatabaseRole("app", v1alpha1.RoleAdmin)))
	tenantExec(t, e, admin+"_0", "a-secret", "postgres",
		"CREATE FUNCTION public.starts_with(name, text) RETURNS boolean "+hostile)
	// A tenant's own database with the server's default search_path: format(text, name, name)
	// matches the backup's format('%I.%I', nspname, relname) better than pg_catalog's variadic one.
	tenantExec(t, e, shop+"_0", "s-secret", "shop",
		"CREATE FUNCTION public.format(text, name, name) RETURNS text "+hostile,
		"CREATE TABLE public.orders (id int)", "INSERT INTO public.orders VALUES (1)")
	// An admin binding's database: a schema of its own put before pg_catalog, with the backup's
	// functions and count(*), then settings that would stop every session the agent opens there.
	tenantExec(t, e, admin+"_0", "a-secret", "app",
		"CREATE SCHEMA evil",
		"CREATE FUNCTION evil.pg_export_snapshot() RETURNS text "+hostile,
		"CREATE FUNCTION evil.format(text, name, name) RETURNS text "+hostile,
		"CREATE FUNCTION evil.tally(bigint) RETURNS bigint "+hostile,
		"CREATE AGGREGATE evil.count(*) (SFUNC = evil.tally, STYPE = bigint, INITCOND = '0')",
		"CREATE FUNCTION evil.pg_is_in_recovery() RETURNS boolean "+hostile,
		"CREATE TABLE public.t (id int)", "INSERT INTO public.t VALUES (1), (2)",
		"ALTER DATABASE app SET search_path = evil, pg_catalog, public",
		"ALTER DATABASE app SET default_transaction_read_only = on",
		"ALTER DATABASE app SET statement_timeout = 1",
		"ALTER DATABASE app SET lock_timeout = 1",
		"ALTER DATABASE app SET idle_in_transaction_session_timeout = 1",
		"ALTER DATABASE app SET role = "+literal(DatabaseRole("app", v1alpha1.RoleReadOnly)),
	)

	// Dropping another tenant's replaced user reads pg_roles in postgres and disowns in every
	// database, app included.
	drop(t, e, shop, shop+"_1")
	if got := query(t, e, "SELECT count(*)::text FROM pg_roles WHERE rolname = '"+shop+"_0'"); got != "0" {
		t.Errorf("%s_0 still exists after its drop", shop)
	}
	// A rotation of the admin binding itself: ensureDatabase grants inside app.
	ensure(t, e, admin+"_1", "a-secret-2", v1alpha1.RoleAdmin, "app")
	drop(t, e, admin, admin+"_1")
	if err := e.Dump(ctx, io.Discard); err != nil {
		t.Errorf("backup: %v", err)
	}
	if st := e.Status(ctx); !st.Ready || st.Role != "primary" {
		t.Errorf("status: %+v", st)
	}
}

// tenantExec runs statements as a binding's user, logged in over TCP as the application would.
func tenantExec(t *testing.T, e *Engine, user, password, database string, statements ...string) {
	t.Helper()
	conn := mustLogin(t, e, user, password, database)
	for _, sql := range statements {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s as %s: %v", sql, user, err)
		}
	}
}
