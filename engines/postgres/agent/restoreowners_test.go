package agent

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// A binding's user defines a function that tries to become superuser whenever it runs with a
// superuser's privileges (after resetting its role and session authorization, as a function may),
// and makes every row of its table call it: a CHECK constraint, a domain's check and a generated
// column. Restoring the backup loads those rows and runs the function, never as a superuser.
func TestRestoreRunsNoTenantCodeAsSuperuser(t *testing.T) {
	ctx := context.Background()
	src, srcAgent := startWithReplication(t)
	writer := names.UserStem("apps", "orders") + "_0"
	ensure(t, src, writer, "w-secret", v1alpha1.RoleReadWrite, "app")
	group := DatabaseRole("app", v1alpha1.RoleReadWrite)
	tenantExec(t, src, writer, "w-secret", "app",
		"CREATE SEQUENCE public.as_superuser",
		"CREATE SEQUENCE public.as_tenant",
		`CREATE FUNCTION public.spy(v int) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
			BEGIN RESET SESSION AUTHORIZATION; EXCEPTION WHEN OTHERS THEN NULL; END;
			IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
				PERFORM pg_catalog.nextval('public.as_superuser');
				EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '`+group+`');
			ELSE
				PERFORM pg_catalog.nextval('public.as_tenant');
			END IF;
			RETURN true;
		END $$`,
		`CREATE FUNCTION public.spy_immutable(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
		BEGIN PERFORM public.spy(v); RETURN v; END $$`,
		"CREATE DOMAIN public.watched AS int CHECK (public.spy(VALUE))",
		"CREATE TABLE public.t (a int CHECK (public.spy(a)), b public.watched, c int GENERATED ALWAYS AS (public.spy_immutable(a)) STORED)",
		"INSERT INTO public.t (a, b) SELECT g, g FROM pg_catalog.generate_series(1, 3) g",
	)
	calls := func(e *Engine, seq string) int {
		n, err := strconv.Atoi(queryIn(t, e, "app", "SELECT CASE WHEN is_called THEN last_value ELSE 0 END::text FROM public."+seq))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := calls(src, "as_tenant")
	if before == 0 || calls(src, "as_superuser") != 0 {
		t.Fatalf("the function did not run as the tenant when the rows were inserted")
	}
	var dump bytes.Buffer
	if err := srcAgent.agent().Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}

	for name, target := range map[string]func(t *testing.T) (*Engine, *running){
		"in place":     func(*testing.T) (*Engine, *running) { return src, srcAgent },
		"a new server": func(t *testing.T) (*Engine, *running) { return startWithReplication(t) },
	} {
		t.Run(name, func(t *testing.T) {
			e, r := target(t)
			summary, err := r.agent().Load(ctx, bytes.NewReader(dump.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("load: %s", summary)
			if got := queryIn(t, e, "app", "SELECT count(*)::text FROM public.t"); got != "3" {
				t.Fatalf("t has %s rows after the restore, want 3", got)
			}
			if n := calls(e, "as_superuser"); n != 0 {
				t.Errorf("the tenant's function ran %d times as a superuser during the restore", n)
			}
			if n := calls(e, "as_tenant"); n <= before {
				t.Errorf("the tenant's function did not run during the restore (%d calls, %d before): the test proves nothing", n, before)
			}
			if got := query(t, e, "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolsuper"); got != Superuser {
				t.Errorf("superusers after the restore: %s", got)
			}
			if got := query(t, e, "SELECT count(*)::text FROM pg_roles WHERE rolname = '"+Restorer+"'"); got != "0" {
				t.Errorf("%s is left after the restore", Restorer)
			}
		})
	}
}
