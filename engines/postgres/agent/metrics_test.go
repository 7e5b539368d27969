package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/test/promtest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// scrapeToken is the scrape token the test agents answer (agenttest.Instance.ScrapeToken).
const scrapeToken = "the fleet's scrape token"

func (r *running) scrape(t *testing.T) promtest.Families {
	t.Helper()
	m, err := r.tls.Scrape(context.Background(), r.metrics, scrapeToken)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitMetric waits until r's figure name{labels} satisfies ok.
func (r *running) waitMetric(t *testing.T, what string, ok func(v float64) bool, name string, labels ...string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		m := r.scrape(t)
		v, present := m.Value(name, labels...)
		if !present || !ok(v) {
			return fmt.Errorf("%s%v = %v (present: %v), want %s; served:\n%s", name, labels, v, present, what, m)
		}
		return nil
	})
}

func positive(v float64) bool { return v > 0 }
func zero(v float64) bool     { return v == 0 }

// The agent exports PostgreSQL's figures as the monitoring role: a member of pg_monitor, never
// the superuser. Each figure is checked against what the test did to the server: a database with
// commits and a rollback, a session idle in a transaction, one waiting for its lock, WAL written,
// and a replica whose replay is paused, whose lag rises as the primary writes and falls to 0 once
// it replays again.
func TestTheAgentExportsPostgreSQLsFigures(t *testing.T) {
	rs := newReplicaSet(t, 2, "")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	p, r := rs.members["pg-0"], rs.members["pg-1"]
	ctx := context.Background()

	p.r.waitMetric(t, "1", func(v float64) bool { return v == 1 }, "datafleet_postgres_up")
	if got := query(t, p.e, `SELECT format('%s %s', r.rolsuper, pg_has_role(r.oid, 'pg_monitor', 'MEMBER')) FROM pg_roles r WHERE rolname = '`+Monitor+`'`); got != "f t" {
		t.Fatalf("the monitoring role (superuser, member of pg_monitor): %s, want f t", got)
	}
	// The figures are read as that role: without its login they are gone.
	execSQL(t, p.e, "ALTER ROLE "+Monitor+" NOLOGIN")
	p.r.waitMetric(t, "0", zero, "datafleet_postgres_up")
	if m := p.r.scrape(t); len(m.Series("datafleet_postgres_max_connections")) > 0 {
		t.Fatalf("figures exported without the monitoring role's session:\n%s", m)
	}
	execSQL(t, p.e, "ALTER ROLE "+Monitor+" LOGIN")
	p.r.waitMetric(t, "1", func(v float64) bool { return v == 1 }, "datafleet_postgres_up")

	execSQL(t, p.e, "CREATE DATABASE orders", "SELECT pg_stat_force_next_flush()")
	tenant, err := dbaConnect(ctx, p.e, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close(ctx)
	for _, s := range []string{"CREATE TABLE items (id int)", "INSERT INTO items SELECT generate_series(1, 10000)",
		"BEGIN", "INSERT INTO items VALUES (0)", "ROLLBACK", "BEGIN", "LOCK TABLE items"} {
		if _, err := tenant.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// A second session waits for the first one's lock (until it ends its transaction below).
	waiter, err := dbaConnect(ctx, p.e, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close(ctx)
	waited := make(chan error, 1)
	go func() { _, err := waiter.Exec(ctx, "SELECT count(*) FROM items"); waited <- err }()

	p.r.waitMetric(t, "≥ 1", func(v float64) bool { return v >= 1 }, "datafleet_postgres_locks_waiting")
	p.r.waitMetric(t, "≥ 1", func(v float64) bool { return v >= 1 }, "datafleet_postgres_connections", "state=idle in transaction")
	p.r.waitMetric(t, "> 0", positive, "datafleet_postgres_oldest_transaction_age_seconds")
	p.r.waitMetric(t, "> 100 kB", func(v float64) bool { return v > 100e3 }, "datafleet_postgres_database_size_bytes", "database=orders")
	p.r.waitMetric(t, "≥ 2", func(v float64) bool { return v >= 2 }, "datafleet_postgres_transactions_total", "database=orders", "result=commit")
	if _, err := tenant.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	p.r.waitMetric(t, "0", zero, "datafleet_postgres_locks_waiting")
	// A session reports its counts when it goes idle outside a transaction.
	p.r.waitMetric(t, "≥ 1", func(v float64) bool { return v >= 1 }, "datafleet_postgres_transactions_total", "database=orders", "result=rollback")
	m := p.r.scrape(t)
	for _, f := range []struct {
		name   string
		labels []string
	}{
		{"datafleet_postgres_max_connections", nil},
		{"datafleet_postgres_deadlocks_total", []string{"database=orders"}},
		{"datafleet_postgres_database_xid_age", []string{"database=orders"}},
		{"datafleet_postgres_checkpoints_total", []string{"kind=timed"}},
		{"datafleet_postgres_checkpoints_total", []string{"kind=requested"}},
		{"datafleet_postgres_wal_generated_bytes_total", nil},
		{"datafleet_member_role", []string{"role=primary"}},
		{"datafleet_member_volume_size_bytes", nil},
		{"datafleet_member_volume_available_bytes", nil},
	} {
		if _, ok := m.Value(f.name, f.labels...); !ok {
			t.Errorf("no %s%v; served:\n%s", f.name, f.labels, m)
		}
	}
	if v, _ := m.Value("datafleet_postgres_max_connections"); v < 10 {
		t.Errorf("max_connections %v", v)
	}
	if _, ok := m.Value("datafleet_postgres_replay_lag_bytes"); ok {
		t.Errorf("the primary exports a replica's replay lag; served:\n%s", m)
	}

	// Replication lag: the replica replays everything, then pauses replay while the primary writes.
	p.r.waitMetric(t, "0", zero, "datafleet_postgres_replication_lag_bytes", "replica=pg-1")
	r.r.waitMetric(t, "1", func(v float64) bool { return v == 1 }, "datafleet_member_role", "role=replica")
	execSQL(t, r.e, "SELECT pg_wal_replay_pause()")
	before := p.r.scrape(t)
	execSQL(t, p.e, "CREATE TABLE lag AS SELECT generate_series(1, 100000) AS n")
	p.r.waitMetric(t, "> 1 MB", func(v float64) bool { return v > 1e6 }, "datafleet_postgres_replication_lag_bytes", "replica=pg-1")
	r.r.waitMetric(t, "> 1 MB", func(v float64) bool { return v > 1e6 }, "datafleet_postgres_replay_lag_bytes")
	after := p.r.scrape(t)
	w0, _ := before.Value("datafleet_postgres_wal_generated_bytes_total")
	w1, _ := after.Value("datafleet_postgres_wal_generated_bytes_total")
	if w1-w0 < 1e6 {
		t.Errorf("WAL generated rose by %v bytes while 100000 rows were written", w1-w0)
	}
	execSQL(t, r.e, "SELECT pg_wal_replay_resume()")
	p.r.waitMetric(t, "0", zero, "datafleet_postgres_replication_lag_bytes", "replica=pg-1")
	r.r.waitMetric(t, "0", zero, "datafleet_postgres_replay_lag_bytes")
}

// BenchmarkScrape is the exporter's cost: one scrape of a standalone PostgreSQL agent (its own
// figures and PostgreSQL's, over TLS with the token), measured by the scraper; the agent's side is
// in the same process, so allocations count both.
func BenchmarkScrape(b *testing.B) {
	e := &Engine{Config: newConfig(b)}
	r := start(b, e)
	ctx := context.Background()
	testenv.Eventually(b, time.Minute, func() error {
		m, err := r.tls.Scrape(ctx, r.metrics, scrapeToken)
		if err != nil {
			return err
		}
		if v, _ := m.Value("datafleet_postgres_up"); v != 1 {
			return fmt.Errorf("datafleet_postgres_up %v", v)
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.tls.Scrape(ctx, r.metrics, scrapeToken); err != nil {
			b.Fatal(err)
		}
	}
}
