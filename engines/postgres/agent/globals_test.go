package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// What pg_dumpall writes is rebuilt statement by statement; what would hand out privileges is
// left out and named; what is not a roles statement refuses the archive.
func TestReadGlobalsRebuildsOnlyWhatARestoreMay(t *testing.T) {
	const dump = `--
-- PostgreSQL database cluster dump
--
\restrict abc123
SET default_transaction_read_only = off;
SET client_encoding = 'UTF8';
CREATE ROLE analyst;
ALTER ROLE analyst WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b';
CREATE ROLE "We""ird";
ALTER ROLE "We""ird" WITH SUPERUSER CREATEROLE NOLOGIN REPLICATION BYPASSRLS VALID UNTIL '2030-01-01 00:00:00+00';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';
ALTER ROLE analyst SET search_path TO '$user', 'public';
ALTER ROLE analyst IN DATABASE app SET work_mem TO '64MB';
ALTER ROLE analyst SET session_preload_libraries TO 'evil';
COMMENT ON ROLE analyst IS 'it''s
two lines';
GRANT dfdb_app_1234abcd_reader TO analyst WITH INHERIT TRUE GRANTED BY postgres;
GRANT dfdb_app_1234abcd_writer TO "We""ird" WITH ADMIN OPTION, INHERIT FALSE;
GRANT postgres TO analyst;
GRANT pg_execute_server_program TO analyst GRANTED BY postgres;
CREATE TABLESPACE fast OWNER postgres LOCATION '/mnt/fast';
\unrestrict abc123
`
	p, err := readGlobals(strings.NewReader(dump), map[string]bool{"search_path": true, "work_mem": true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"analyst", `We"ird`}; !slices.Equal(p.roles, want) {
		t.Errorf("roles %q, want %q", p.roles, want)
	}
	want := []string{
		`ALTER ROLE "analyst" WITH NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT NOCREATEDB LOGIN CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'`,
		`ALTER ROLE "We""ird" WITH NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN VALID UNTIL '2030-01-01 00:00:00+00'`,
		`ALTER ROLE "analyst" SET "search_path" TO '$user', 'public'`,
		`ALTER ROLE "analyst" IN DATABASE "app" SET "work_mem" TO '64MB'`,
		`COMMENT ON ROLE "analyst" IS 'it''s` + "\n" + `two lines'`,
		`GRANT "dfdb_app_1234abcd_reader" TO "analyst" WITH INHERIT TRUE`,
		`GRANT "dfdb_app_1234abcd_writer" TO "We""ird" WITH ADMIN OPTION, INHERIT FALSE`,
	}
	if !slices.Equal(p.after, want) {
		t.Errorf("rebuilt:\n%s\nwant:\n%s", strings.Join(p.after, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range []string{`superuser of role We"ird`, `createrole of role We"ird`, `replication of role We"ird`, `bypassrls of role We"ird`,
		"setting session_preload_libraries of role analyst", "membership of analyst in postgres", "membership of analyst in pg_execute_server_program", "tablespaces"} {
		if !slices.Contains(p.skipped, s) {
			t.Errorf("%q is not among what was left out: %q", s, p.skipped)
		}
	}
	for forged, want := range map[string]string{
		"\\! touch /tmp/x\n":                            `psql meta-command \! is not allowed`,
		"\\copy t from program 'sh'\n":                  `psql meta-command \copy is not allowed`,
		"CREATE ROLE a;\nDROP ROLE postgres;\n":         `a "DROP ROLE POSTGRES" statement is not one a restore applies`,
		"COPY t FROM PROGRAM 'sh';\n":                   `a "COPY T FROM PROGRAM" statement`,
		"ALTER ROLE a WITH LOGIN; SELECT 1;\n":          `a "SELECT" statement`,
		"ALTER ROLE a WITH SYSID 5;\n":                  `a "SYSID" statement`,
		"CREATE ROLE a\n":                               "without its ';'",
		"COMMENT ON ROLE a IS E'\\x41';\n":              "E'' strings",
		"ALTER ROLE a SET search_path TO $$x$$;\n":      "an unexpected character",
		"GRANT a TO b WITH ADMIN OPTION GRANTED b;\n":   `a "GRANT A TO B" statement`,
		"ALTER ROLE a WITH PASSWORD 'x' LOGIN 'y';\n":   "not one a restore applies",
		"CREATE ROLE a; -- fine\nCREATE ROLE 'b';\n":    "not one a restore applies",
		"GRANT a TO b; GRANT c TO d WITH SUPER TRUE;\n": "not one a restore applies",
	} {
		if _, err := readGlobals(strings.NewReader(forged), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", forged, err, want)
		}
	}
}

// A dump whose roles part was forged in the store, restored into a real server: a `\!` line
// refuses the archive before anything runs (psql, which the restore used, would have run it as a
// shell command in the pod); superuser, membership of the superuser or of
// pg_execute_server_program, and settings that load libraries are left out, as is a database
// setting that would load one into the agent's own sessions, and anything of the agent's metrics
// role (Monitor).
func TestAForgedArchiveCannotHandOutPrivileges(t *testing.T) {
	ctx := context.Background()
	src, srcAgent := startWithReplication(t)
	ensure(t, src, names.UserStem("apps", "orders")+"_0", "w-secret", v1alpha1.RoleReadWrite, "app")
	var dump bytes.Buffer
	if err := srcAgent.agent().Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	dst, dstAgent := startWithReplication(t)
	if err := dst.createMonitor(ctx); err != nil {
		t.Fatal(err)
	}

	pwned := fmt.Sprintf("/tmp/datafleet-forged-%d", os.Getpid())
	_ = os.Remove(pwned)
	withShell := rewriteArchive(t, dump.Bytes(), func(name string, b []byte) []byte {
		if name == partGlobals {
			return append(b, []byte("\\! touch "+pwned+"\n")...)
		}
		return b
	})
	if _, err := dstAgent.agent().Load(ctx, bytes.NewReader(withShell)); err == nil || !strings.Contains(err.Error(), `meta-command \! is not allowed`) {
		t.Errorf("an archive with a shell command: %v", err)
	}
	if _, err := os.Stat(pwned); err == nil {
		os.Remove(pwned)
		t.Fatal("the archive's shell command ran")
	}
	if got := query(t, dst, "SELECT count(*)::text FROM pg_database WHERE datname = 'app'"); got != "0" {
		t.Errorf("the refused archive restored its database")
	}

	forged := rewriteArchive(t, dump.Bytes(), func(name string, b []byte) []byte {
		switch name {
		case partGlobals:
			return append(b, []byte(`CREATE ROLE evil;
ALTER ROLE evil WITH SUPERUSER CREATEROLE LOGIN REPLICATION BYPASSRLS PASSWORD 'chosen';
GRANT postgres TO evil;
GRANT pg_execute_server_program TO evil;
GRANT `+DatabaseRole("app", v1alpha1.RoleAdmin)+` TO evil;
ALTER ROLE evil SET session_preload_libraries TO 'evil';
ALTER ROLE `+Monitor+` WITH LOGIN PASSWORD 'chosen';
ALTER ROLE `+Monitor+` SET search_path TO evil, pg_catalog;
GRANT `+Monitor+` TO evil;
`)...)
		case partDatabases:
			var dbs []databaseInfo
			if err := json.Unmarshal(b, &dbs); err != nil {
				t.Fatal(err)
			}
			for i := range dbs {
				dbs[i].Settings = append(dbs[i].Settings, databaseSetting{Setting: "session_preload_libraries=evil"},
					databaseSetting{Setting: "work_mem=8MB"})
			}
			out, _ := json.Marshal(dbs)
			return out
		}
		return b
	})
	summary, err := dstAgent.agent().Load(ctx, bytes.NewReader(forged))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s", summary)
	for sql, want := range map[string]string{
		"SELECT (rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls)::text FROM pg_roles WHERE rolname = 'evil'":                                                              "false",
		"SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'evil'":                                                                                                                "true",
		"SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'evil'": DatabaseRole("app", v1alpha1.RoleAdmin),
		"SELECT count(*)::text FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE c LIKE 'session_preload_libraries%'":                                                             "0",
		"SELECT count(*)::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE d.datname = 'app' AND c = 'work_mem=8MB'":            "1",
		// The agent's own metrics role keeps what the agent gave it: a password would let it log in
		// over the network, a search_path would run the archive's functions in the agent's queries.
		"SELECT count(*)::text FROM pg_authid WHERE rolname = '" + Monitor + "' AND rolpassword IS NOT NULL":                       "0",
		"SELECT count(*)::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = '" + Monitor + "'": "0",
	} {
		if got := query(t, dst, sql); got != want {
			t.Errorf("%s: %s, want %s", sql, got, want)
		}
	}
	for _, s := range []string{"superuser of role evil", "membership of evil in postgres", "membership of evil in pg_execute_server_program",
		"setting session_preload_libraries of role evil", "session_preload_libraries in database app"} {
		if !strings.Contains(summary, s) {
			t.Errorf("the summary does not name %q as left out: %s", s, summary)
		}
	}
}
