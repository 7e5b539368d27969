package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

const testReplicationPassword = "replication-password-for-tests"

// startWithReplication runs an agent whose replication user has a known password.
func startWithReplication(t testing.TB) (*Engine, *running) {
	t.Helper()
	c := newConfig(t)
	c.ReplicationPasswordFile = filepath.Join(t.TempDir(), "replication-password")
	if err := os.WriteFile(c.ReplicationPasswordFile, []byte(testReplicationPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Config: c}
	return e, start(t, e)
}

// Back up through the agent's HTTP stream into a real MinIO, drop a table, and restore in place
// and into a new server: rows, roles, memberships, grants and ownership come back; binding users
// keep their current passwords; a cut archive changes nothing.
func TestDumpAndLoad(t *testing.T) {
	ctx := context.Background()
	src, srcAgent := startWithReplication(t)
	writer, reader := names.UserStem("apps", "orders")+"_0", names.UserStem("apps", "report")+"_0"
	ensure(t, src, writer, "w-secret", v1alpha1.RoleReadWrite, "app")
	ensure(t, src, reader, "r-secret", v1alpha1.RoleReadOnly, "app")
	hostile := `x"; DROP DATABASE app; --`
	ensure(t, src, names.UserStem("apps", "hostile")+"_0", "h-secret", v1alpha1.RoleAdmin, hostile)
	w := mustLogin(t, src, writer, "w-secret", "app")
	for _, sql := range []string{
		"CREATE TABLE orders (id serial PRIMARY KEY, what text)",
		"INSERT INTO orders (what) SELECT 'order ' || g FROM generate_series(1, 5000) g",
	} {
		if _, err := w.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// A role made by hand, with a password and a grant: not the operator's, so it is restored.
	execSQL(t, src, "CREATE ROLE analyst LOGIN PASSWORD 'a-secret'", "GRANT "+ident(DatabaseRole("app", v1alpha1.RoleReadOnly))+" TO analyst")
	execSQLIn(t, src, hostile, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')")
	// Database settings, and a role's in a database: a list quoted as identifiers, a setting that
	// would have stopped pg_restore, and a binding user's, which is not the backup's to restore.
	execSQL(t, src, `ALTER DATABASE app SET search_path = "$user", public, "My ""Schema"""`,
		"ALTER DATABASE app SET statement_timeout = '5min'",
		"ALTER ROLE analyst IN DATABASE app SET work_mem = '8MB'",
		"ALTER ROLE "+ident(reader)+" IN DATABASE app SET work_mem = '1MB'",
		"ALTER DATABASE "+ident(hostile)+" SET default_transaction_read_only = on")
	wantSettings := map[string]string{}
	for _, db := range []string{"app", hostile} {
		wantSettings[db] = settingsOf(t, src, db, false)
	}

	m := testenv.StartMinIO(t)
	s, err := store.Open(ctx, m.URL(), "pg", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dump := func(ctx context.Context, w io.Writer) error { return srcAgent.agent().Dump(ctx, w) }
	man, err := backup.Write(ctx, s, "apps/orders/b1", backup.Manifest{Engine: "postgres"}, nil, dump)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dump: %d bytes from pg_dump, %d stored", man.RawSize, man.Size)
	if err := agenttest.New(t).At(srcAgent.addr).Dump(ctx, io.Discard); err == nil {
		t.Fatal("a dump was given to another instance's operator certificate")
	}

	restore := func(e *Engine, r *running) error {
		if err := backup.Verify(ctx, s, "apps/orders/b1", man, nil); err != nil {
			return err
		}
		rc, err := backup.Open(ctx, s, "apps/orders/b1", man, nil)
		if err != nil {
			return err
		}
		defer rc.Close()
		summary, err := r.agent().Load(ctx, rc)
		t.Logf("load: %s", summary)
		return err
	}
	restored := func(t *testing.T, e *Engine) {
		t.Helper()
		if got := queryIn(t, e, "app", "SELECT count(*)::text || ' ' || max(id)::text FROM orders"); got != "5000 5000" {
			t.Fatalf("orders: %s, want 5000 rows up to id 5000", got)
		}
		if got := queryIn(t, e, "app", "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"); got != DatabaseRole("app", v1alpha1.RoleReadWrite) {
			t.Fatalf("orders is owned by %s", got)
		}
		// The sequence continues after the restored rows.
		if got := queryIn(t, e, "app", "SELECT nextval('orders_id_seq')::text"); got != "5001" {
			t.Fatalf("the sequence restarts at %s", got)
		}
		a := mustLogin(t, e, "analyst", "a-secret", "app")
		var n int
		if err := a.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 5000 {
			t.Fatalf("analyst reads %d rows: %v", n, err)
		}
		if _, err := a.Exec(ctx, "DELETE FROM orders"); !refusedPrivilege(err) {
			t.Fatalf("analyst (a reader) may delete: %v", err)
		}
		if got := queryIn(t, e, hostile, "SELECT v FROM t"); got != "kept" {
			t.Fatalf("database %q: %s", hostile, got)
		}
		if got := query(t, e, "SELECT count(*)::text FROM pg_database WHERE datname LIKE 'dfre%'"); got != "0" {
			t.Fatalf("%s side databases left", got)
		}
		for db, want := range wantSettings {
			if got := settingsOf(t, e, db, true); got != want {
				t.Fatalf("settings of database %q: %s, want %s", db, got, want)
			}
		}
		if got := queryIn(t, e, "app", "SHOW search_path"); got != `"$user", public, "My ""Schema"""` {
			t.Fatalf("search_path in app: %s", got)
		}
	}

	t.Run("in place", func(t *testing.T) {
		w.Close(ctx)
		execSQLIn(t, src, "app", "DROP TABLE orders")
		if err := restore(src, srcAgent); err != nil {
			t.Fatal(err)
		}
		restored(t, src)
		// Binding users were left alone: their current passwords work, with their privileges.
		r := mustLogin(t, src, reader, "r-secret", "app")
		if _, err := r.Exec(ctx, "INSERT INTO orders (what) VALUES ('x')"); !refusedPrivilege(err) {
			t.Fatalf("the reader binding may write after the restore: %v", err)
		}
		w := mustLogin(t, src, writer, "w-secret", "app")
		if _, err := w.Exec(ctx, "INSERT INTO orders (what) VALUES ('after restore')"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("into a new server", func(t *testing.T) {
		dst, dstAgent := startWithReplication(t)
		if err := restore(dst, dstAgent); err != nil {
			t.Fatal(err)
		}
		restored(t, dst)
		if got := query(t, dst, "SELECT count(*)::text FROM pg_roles WHERE rolname LIKE 'sb\\_%'"); got != "0" {
			t.Fatalf("%s binding users were copied to the new server", got)
		}
		// A second restore into the same server replaces the data again, idempotently.
		if err := restore(dst, dstAgent); err != nil {
			t.Fatal(err)
		}
		restored(t, dst)

		t.Run("a setting this server does not know is left out and named", func(t *testing.T) {
			doctored := rewriteArchive(t, readAll(t, s, man), func(name string, b []byte) []byte {
				if name == partDatabases {
					return bytes.Replace(b, []byte(`"settings":[`), []byte(`"settings":[{"setting":"no_such_parameter=secret-value"},`), 1)
				}
				return b
			})
			summary, err := dstAgent.agent().Load(ctx, bytes.NewReader(doctored))
			if err != nil || !strings.Contains(summary, "not every user may set it: no_such_parameter in database app") || strings.Contains(summary, "secret-value") {
				t.Fatalf("a load with an unknown setting: %q, %v", summary, err)
			}
			restored(t, dst)
		})

		t.Run("a cut archive changes nothing", func(t *testing.T) {
			execSQLIn(t, dst, "app", "DELETE FROM orders WHERE id > 100")
			full := bytes.NewBuffer(readAll(t, s, man))
			for _, cut := range []int{full.Len() / 2, full.Len() - 1} {
				if _, err := dstAgent.agent().Load(ctx, bytes.NewReader(full.Bytes()[:cut])); err == nil {
					t.Fatalf("a load cut at %d of %d bytes succeeded", cut, full.Len())
				}
				if got := queryIn(t, dst, "app", "SELECT count(*)::text FROM orders"); got != "100" {
					t.Fatalf("after a failed load, orders has %s rows, want the 100 it had", got)
				}
				if got := query(t, dst, "SELECT count(*)::text FROM pg_database WHERE datname LIKE 'dfre%'"); got != "0" {
					t.Fatalf("%s side databases left after a failed load", got)
				}
			}

			// A restore whose rows differ from the dump's count replaces nothing.
			doctored := rewriteArchive(t, full.Bytes(), func(name string, b []byte) []byte {
				if name == partSummary {
					return bytes.Replace(b, []byte(`"public.orders":5000`), []byte(`"public.orders":5001`), 1)
				}
				return b
			})
			_, err := dstAgent.agent().Load(ctx, bytes.NewReader(doctored))
			if err == nil || !strings.Contains(err.Error(), "has 5000 rows in public.orders; the dump had 5001") {
				t.Fatalf("a load whose counts differ: %v", err)
			}
			if got := queryIn(t, dst, "app", "SELECT count(*)::text FROM orders"); got != "100" {
				t.Fatalf("after a load whose counts differ, orders has %s rows, want the 100 it had", got)
			}
		})
	})
}

// readAll reads a backup's dump whole.
func readAll(t *testing.T, s *store.Store, m backup.Manifest) []byte {
	t.Helper()
	rc, err := backup.Open(context.Background(), s, "apps/orders/b1", m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// settingsOf lists a database's settings and its roles' in it, as "role: name=value" lines;
// binding users' only when withBindings.
func settingsOf(t *testing.T, e *Engine, database string, withBindings bool) string {
	t.Helper()
	return query(t, e, fmt.Sprintf(`SELECT COALESCE(string_agg(COALESCE(r.rolname, '-') || ': ' || c, ' | ' ORDER BY r.rolname NULLS FIRST, c), '')
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole,
		unnest(s.setconfig) c WHERE d.datname = %s AND (%v OR r.rolname IS NULL OR r.rolname NOT LIKE 'sb\_%%')`, literal(database), withBindings))
}

// rewriteArchive copies an archive, changing its parts' contents with change.
func rewriteArchive(t *testing.T, in []byte, change func(name string, b []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := archive.NewWriter(&out)
	err := archive.NewReader(bytes.NewReader(in)).Each(func(name string, part io.Reader) error {
		b, err := io.ReadAll(part)
		if err != nil {
			return err
		}
		pw, _ := w.Create(name)
		_, err = pw.Write(change(name, b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	return out.Bytes()
}

func execSQLIn(t testing.TB, e *Engine, database string, statements ...string) {
	t.Helper()
	conn, err := dbaConnect(context.Background(), e, database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range statements {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func queryIn(t *testing.T, e *Engine, database, sql string) string {
	t.Helper()
	conn, err := dbaConnect(context.Background(), e, database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var out string
	if err := conn.QueryRow(context.Background(), sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestSetSQL(t *testing.T) {
	const target = `ALTER DATABASE "d"`
	for setting, want := range map[string]string{
		`search_path="$user", public, "My ""Schema"""`: `ALTER DATABASE "d" SET "search_path" TO '$user', 'public', 'My "Schema"'`,
		`search_path=""`:                `ALTER DATABASE "d" SET "search_path" TO ''`,
		`search_path=`:                  `ALTER DATABASE "d" SET "search_path" TO ''`,
		`TimeZone=Europe/Paris`:         `ALTER DATABASE "d" SET "TimeZone" TO 'Europe/Paris'`,
		`statement_timeout=5min`:        `ALTER DATABASE "d" SET "statement_timeout" TO '5min'`,
		`app.motto=it's a=b, c`:         `ALTER DATABASE "d" SET "app.motto" TO 'it''s a=b, c'`,
		`temp_tablespaces=fast,"sl ow"`: `ALTER DATABASE "d" SET "temp_tablespaces" TO 'fast', 'sl ow'`,
	} {
		if got, ok := setSQL(target, setting); !ok || got != want {
			t.Errorf("setSQL(%q) = %q, %v; want %q", setting, got, ok, want)
		}
	}
	for _, bad := range []string{`no-equals-sign`, `=value`, `search_path="unterminated`, `search_path=a b`, `search_path=a,`} {
		if got, ok := setSQL(target, bad); ok {
			t.Errorf("setSQL(%q) = %q, want refused", bad, got)
		}
	}
}
