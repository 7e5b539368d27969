package agent

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Monitor is the role the metrics are read as: a member of pg_monitor, which reads every
// statistics view and database size and nothing else, logging in only through the pod-local
// socket (pgHBA) and never as the superuser. It is created on the primary (ensureMonitor) and
// reaches the replicas through replication.
const Monitor = "datafleet_monitor"

func pgDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("datafleet_postgres_"+name, help, labels, nil)
}

// The figures docs/observability.md lists, with their meaning.
var (
	pgUp                    = pgDesc("up", "1 when the agent could read PostgreSQL's statistics as the monitoring role, else 0 (and nothing else is exported).")
	pgMaxConnections        = pgDesc("max_connections", "The server's max_connections.")
	pgConnections           = pgDesc("connections", "Client connections by state (pg_stat_activity: active, idle, idle in transaction, …).", "state")
	pgDatabaseSize          = pgDesc("database_size_bytes", "Size of each database on disk.", "database")
	pgTransactions          = pgDesc("transactions_total", "Transactions finished in each database since the statistics were reset, by result (commit, rollback).", "database", "result")
	pgDeadlocks             = pgDesc("deadlocks_total", "Deadlocks detected in each database since the statistics were reset.", "database")
	pgXIDAge                = pgDesc("database_xid_age", "Transactions since each database was last frozen (age of datfrozenxid): wraparound comes at about 2^31.", "database")
	pgOldestTransaction     = pgDesc("oldest_transaction_age_seconds", "Age of the oldest open client transaction (0 when none is open).")
	pgLocksWaiting          = pgDesc("locks_waiting", "Lock requests not granted yet (pg_locks), that is sessions waiting for another one.")
	pgWALGenerated          = pgDesc("wal_generated_bytes_total", "WAL written over the instance's life: the primary's current WAL position (primary only).")
	pgReplicationLagBytes   = pgDesc("replication_lag_bytes", "WAL each connected replica has not replayed yet, as the primary sees it (primary only).", "replica")
	pgReplicationLagSeconds = pgDesc("replication_lag_seconds", "How far each connected replica's replay trails the primary in time, as the primary measures it (primary only; 0 when the replica has caught up).", "replica")
	pgReplayLagBytes        = pgDesc("replay_lag_bytes", "WAL this replica has received but not replayed yet (replica only).")
	pgCheckpoints           = pgDesc("checkpoints_total", "Checkpoints since the statistics were reset, by kind (timed, requested).", "kind")
	// Continuous archiving (primary only, with archive_mode on).
	pgArchived           = pgDesc("archived_segments_total", "WAL segments archive_command stored since the statistics were reset.")
	pgArchiveFailures    = pgDesc("archive_failures_total", "Failed archive_command runs since the statistics were reset (a segment is retried until it is stored).")
	pgArchiveLastSuccess = pgDesc("archive_last_success_timestamp_seconds", "When the last segment was archived (Unix time; absent before the first).")
	pgArchiveBacklog     = pgDesc("archive_backlog_segments", "Completed WAL segments waiting to be archived: the data a loss of the volume now would lose.")
)

// Export reads the figures in one session as Monitor, one query per concern; a query that fails
// leaves its figures out. Every name is qualified and search_path is pinned (sessionSettings), so
// nothing a tenant created in a database runs in this session.
func (e *Engine) Export(ctx context.Context, ch chan<- prometheus.Metric) {
	conn, err := e.connectAs(ctx, Monitor, "postgres")
	if err != nil {
		log.FromContext(ctx).V(1).Info("metrics: cannot connect as the monitoring role", "error", err.Error())
		ch <- prometheus.MustNewConstMetric(pgUp, prometheus.GaugeValue, 0)
		return
	}
	defer conn.Close(context.Background())
	ch <- prometheus.MustNewConstMetric(pgUp, prometheus.GaugeValue, 1)
	var maxConns, versionNum int64
	var inRecovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.current_setting('max_connections')::pg_catalog.int8,
		pg_catalog.current_setting('server_version_num')::pg_catalog.int8, pg_catalog.pg_is_in_recovery()`).Scan(&maxConns, &versionNum, &inRecovery); err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(pgMaxConnections, float64(maxConns))
	each(ctx, conn, `SELECT coalesce(state, 'unknown'), pg_catalog.count(*)::pg_catalog.float8 FROM pg_catalog.pg_stat_activity
		WHERE backend_type = 'client backend' GROUP BY 1`, func(r pgx.Rows) error {
		var state string
		var n float64
		err := r.Scan(&state, &n)
		gauge(pgConnections, n, state)
		return err
	})
	each(ctx, conn, `SELECT d.datname, pg_catalog.pg_database_size(d.oid)::pg_catalog.float8, s.xact_commit::pg_catalog.float8,
		  s.xact_rollback::pg_catalog.float8, s.deadlocks::pg_catalog.float8, pg_catalog.age(d.datfrozenxid)::pg_catalog.float8
		FROM pg_catalog.pg_database d JOIN pg_catalog.pg_stat_database s ON s.datid = d.oid
		WHERE d.datallowconn AND NOT d.datistemplate`, func(r pgx.Rows) error {
		var db string
		var size, commits, rollbacks, deadlocks, xidAge float64
		if err := r.Scan(&db, &size, &commits, &rollbacks, &deadlocks, &xidAge); err != nil {
			return err
		}
		gauge(pgDatabaseSize, size, db)
		counter(pgTransactions, commits, db, "commit")
		counter(pgTransactions, rollbacks, db, "rollback")
		counter(pgDeadlocks, deadlocks, db)
		gauge(pgXIDAge, xidAge, db)
		return nil
	})
	one(ctx, conn, `SELECT coalesce(pg_catalog.max(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) xact_start)), 0)::pg_catalog.float8
		FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()`,
		func(v float64) { gauge(pgOldestTransaction, v) })
	one(ctx, conn, `SELECT pg_catalog.count(*)::pg_catalog.float8 FROM pg_catalog.pg_locks WHERE NOT granted`,
		func(v float64) { gauge(pgLocksWaiting, v) })
	checkpoints := `SELECT checkpoints_timed::pg_catalog.float8, checkpoints_req::pg_catalog.float8 FROM pg_catalog.pg_stat_bgwriter`
	if versionNum >= 170000 {
		checkpoints = `SELECT num_timed::pg_catalog.float8, num_requested::pg_catalog.float8 FROM pg_catalog.pg_stat_checkpointer`
	}
	each(ctx, conn, checkpoints, func(r pgx.Rows) error {
		var timed, requested float64
		err := r.Scan(&timed, &requested)
		counter(pgCheckpoints, timed, "timed")
		counter(pgCheckpoints, requested, "requested")
		return err
	})
	if inRecovery {
		one(ctx, conn, `SELECT coalesce(pg_catalog.pg_last_wal_receive_lsn() OPERATOR(pg_catalog.-) pg_catalog.pg_last_wal_replay_lsn(), 0)::pg_catalog.float8`,
			func(v float64) { gauge(pgReplayLagBytes, nonNegative(v)) })
		return
	}
	one(ctx, conn, `SELECT (pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.float8`,
		func(v float64) { counter(pgWALGenerated, v) })
	e.exportArchiving(ctx, conn, gauge, counter)
	each(ctx, conn, `SELECT application_name,
		  coalesce(pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) replay_lsn, pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.float8,
		  coalesce(EXTRACT(epoch FROM replay_lag), 0)::pg_catalog.float8
		FROM pg_catalog.pg_stat_replication WHERE application_name NOT LIKE '%`+CloneSuffix+`'`, func(r pgx.Rows) error {
		var name string
		var bytes, seconds float64
		err := r.Scan(&name, &bytes, &seconds)
		gauge(pgReplicationLagBytes, nonNegative(bytes), name)
		gauge(pgReplicationLagSeconds, seconds, name)
		return err
	})
}

// exportArchiving reports the archiver (archiveState), when archiving is on.
func (e *Engine) exportArchiving(ctx context.Context, conn *pgx.Conn, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	a, err := e.archiveState(ctx, conn)
	if err != nil || a == nil {
		return
	}
	counter(pgArchived, a.archived)
	counter(pgArchiveFailures, a.failed)
	if a.LastArchivedTime != nil {
		gauge(pgArchiveLastSuccess, float64(a.LastArchivedTime.UnixNano())/1e9)
	}
	gauge(pgArchiveBacklog, float64(a.Backlog))
}

// nonNegative clamps a difference of two positions read at slightly different moments.
func nonNegative(v float64) float64 { return max(v, 0) }

// each runs sql and calls row for every row; a failure ends the figures of that query only.
func each(ctx context.Context, conn *pgx.Conn, sql string, row func(pgx.Rows) error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		log.FromContext(ctx).V(1).Info("metrics: query failed", "error", err.Error())
		return
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			log.FromContext(ctx).V(1).Info("metrics: reading a row failed", "error", err.Error())
			return
		}
	}
}

// one runs sql, which returns one float, and passes it to use.
func one(ctx context.Context, conn *pgx.Conn, sql string, use func(float64)) {
	var v float64
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		log.FromContext(ctx).V(1).Info("metrics: query failed", "error", err.Error())
		return
	}
	use(v)
}

// ensureMonitor creates Monitor on the primary, retrying until it exists.
func (e *Engine) ensureMonitor(ctx context.Context) {
	onPrimary(ctx, "creating the monitoring role", e.createMonitor)
}

func (e *Engine) createMonitor(ctx context.Context) error {
	if ok, err := e.IsPrimary(ctx); err != nil || !ok {
		return errors.Join(err, errNotPrimary)
	}
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range []string{
		`SET synchronous_commit = 'local'`,
		// No password: a TCP login (scram-sha-256 in pg_hba) cannot succeed; the socket is the pod's own.
		`DO $$ BEGIN
		   IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '` + Monitor + `') THEN
		     CREATE ROLE ` + Monitor + `;
		   END IF;
		 END $$`,
		`ALTER ROLE ` + Monitor + ` WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 PASSWORD NULL`,
		`GRANT pg_monitor TO ` + Monitor,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
