package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sessionSettings are given at the start of every session the agent opens as the superuser, in
// the startup packet, where they take precedence over what a database's owner (a tenant's admin
// binding) can set with ALTER DATABASE … SET or ALTER ROLE … IN DATABASE … SET:
//   - search_path holds only pg_catalog (and pg_temp last), so no function or operator a tenant
//     created can shadow a built-in one (the CVE-2018-1058 pattern) in any database;
//   - the read-only default and the timeouts a tenant could set to stop user drops, rotations,
//     backups and status probes of every binding are switched off: how long the agent's work may
//     take is the agent's to decide, not a tenant's;
//   - role is reset, so a database setting cannot make the superuser's session act as another role.
var sessionSettings = map[string]string{
	"search_path":                         "pg_catalog, pg_temp",
	"default_transaction_read_only":       "off",
	"default_transaction_isolation":       "read committed",
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
	"role":                                "none",
}

// laterSettings are sessionSettings of newer servers: an older server refuses a startup packet
// naming a parameter it lacks, so these are set once the session is open, where the server has them.
var laterSettings = map[string]string{
	"transaction_timeout": "0", // PostgreSQL 17
}

// Connect opens a superuser connection through the Unix socket with the sessionSettings.
func (e *Engine) Connect(ctx context.Context, database string) (*pgx.Conn, error) {
	return e.connectAs(ctx, Superuser, database)
}

// connectAs is Connect for another role that logs in through the socket.
func (e *Engine) connectAs(ctx context.Context, user, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = e.Config.SocketDir, uint16(e.Config.Port), user, database
	cfg.RuntimeParams = maps.Clone(sessionSettings)
	cfg.AfterConnect = setLaterSettings
	return pgx.ConnectConfig(ctx, cfg)
}

// setLaterSettings sets each of laterSettings, with a statement that does nothing where the server
// lacks the setting.
func setLaterSettings(ctx context.Context, c *pgconn.PgConn) error {
	for _, name := range slices.Sorted(maps.Keys(laterSettings)) {
		sql := fmt.Sprintf("SELECT pg_catalog.set_config(name, %s, false) FROM pg_catalog.pg_settings WHERE name = %s",
			literal(laterSettings[name]), literal(name))
		if err := c.Exec(ctx, sql).Close(); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return nil
}

// connString is a libpq connection string for the superuser through the socket, for PostgreSQL's
// own tools, with the sessionSettings as options; values are quoted, so a database named like a
// connection string stays a name. (pg_dump and pg_restore also pin search_path themselves; psql
// does not.)
func (e *Engine) connString(database string) string { return e.connStringAs(Superuser, database) }

// connStringAs is connString for another role (one that may log in through the socket).
func (e *Engine) connStringAs(user, database string) string {
	q := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	var opts []string
	for _, name := range slices.Sorted(maps.Keys(sessionSettings)) {
		// In options, a space separates arguments and a backslash keeps the next character.
		opts = append(opts, "-c "+name+"="+strings.NewReplacer(`\`, `\\`, " ", `\ `).Replace(sessionSettings[name]))
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s options=%s", q(e.Config.SocketDir), e.Config.Port, q(user),
		q(database), q(strings.Join(opts, " ")))
}

// unlogged keeps the rest of a session out of the server's log whatever the instance's logging
// parameters (log_statement = all is allowed): statements that carry a password verifier (CREATE
// or ALTER ROLE … PASSWORD, or a comparison with one) are logged neither as run, nor as slow, nor
// with their error.
var unlogged = []string{
	"SET log_statement = 'none'",
	"SET log_min_duration_statement = -1",
	"SET log_min_error_statement = 'panic'",
}
