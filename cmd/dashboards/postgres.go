package main

// postgres is the PostgreSQL dashboard: one instance (or several) as its agents see it.
func postgres() dashboard {
	b, sel := engineBoard("postgres", "Datafleet: PostgreSQL", "PostgreSQL instances as their agents see them (datafleet_postgres_*).", `datafleet_postgres_up`)
	b.row("Members")
	b.add("stat", "Members ready", "", "none", 6, 4, q(sel(`sum(datafleet_member_ready{SEL})`), ""))
	b.add("table", "Roles", "Each pod's role as its PostgreSQL says.", "none", 10, 4, q(sel(`datafleet_member_role{SEL}`), ""))
	b.add("stat", "Statistics readable", "The agent reads the statistics as datafleet_monitor (pg_monitor).", "none", 8, 4,
		q(sel(`min(datafleet_postgres_up{SEL})`), ""))

	b.row("Load")
	b.add("timeseries", "Connections by state", "Against max_connections.", "none", 12, 8,
		q(sel(`sum by (pod, state) (datafleet_postgres_connections{SEL})`), "{{pod}} {{state}}"),
		q(sel(`max by (pod) (datafleet_postgres_max_connections{SEL})`), "{{pod}} max_connections"))
	b.add("timeseries", "Transactions per second", "", "ops", 12, 8,
		q(sel(`sum by (pod, result) (rate(datafleet_postgres_transactions_total{SEL}[5m]))`), "{{pod}} {{result}}"))
	b.add("timeseries", "Oldest open transaction", "A long one holds back vacuum.", "s", 8, 8,
		q(sel(`max by (pod) (datafleet_postgres_oldest_transaction_age_seconds{SEL})`), "{{pod}}"))
	b.add("timeseries", "Sessions waiting for a lock", "", "none", 8, 8, q(sel(`max by (pod) (datafleet_postgres_locks_waiting{SEL})`), "{{pod}}"))
	b.add("timeseries", "Deadlocks per hour", "", "none", 8, 8,
		q(sel(`sum by (database) (increase(datafleet_postgres_deadlocks_total{SEL}[1h]))`), "{{database}}"))

	b.row("Replication and WAL")
	b.add("timeseries", "Replication lag (bytes)", "WAL each replica has not replayed, as its primary sees it.", "bytes", 8, 8,
		q(sel(`max by (replica) (datafleet_postgres_replication_lag_bytes{SEL})`), "{{replica}}"))
	b.add("timeseries", "Replication lag (time)", "", "s", 8, 8,
		q(sel(`max by (replica) (datafleet_postgres_replication_lag_seconds{SEL})`), "{{replica}}"))
	b.add("timeseries", "WAL written per second", "On the primary.", "Bps", 8, 8,
		q(sel(`sum by (pod) (rate(datafleet_postgres_wal_generated_bytes_total{SEL}[5m]))`), "{{pod}}"))
	b.add("timeseries", "Checkpoints per hour", "Requested ones, when frequent, mean max_wal_size is small for the load.", "none", 12, 8,
		q(sel(`sum by (pod, kind) (increase(datafleet_postgres_checkpoints_total{SEL}[1h]))`), "{{pod}} {{kind}}"))
	b.add("timeseries", "Transaction ID age", "Transactions since each database was frozen: wraparound comes at about 2 billion.", "none", 12, 8,
		q(sel(`max by (database) (datafleet_postgres_database_xid_age{SEL})`), "{{database}}"))

	b.row("Continuous archiving")
	b.add("timeseries", "Segments waiting for the archive", "Completed WAL segments the primary has not stored yet: what losing its volume now would lose.", "none", 8, 8,
		q(sel(`max by (pod) (datafleet_postgres_archive_backlog_segments{SEL})`), "{{pod}}"))
	b.add("timeseries", "Since the last archived segment", "A quiet database stores a segment only when it writes; one that writes stores one every archive_timeout.", "s", 8, 8,
		q(sel(`time() - max by (pod) (datafleet_postgres_archive_last_success_timestamp_seconds{SEL})`), "{{pod}}"))
	b.add("timeseries", "Archive failures per hour", "A failed segment is retried until it is stored; the primary's log says why.", "none", 8, 8,
		q(sel(`sum by (pod) (increase(datafleet_postgres_archive_failures_total{SEL}[1h]))`), "{{pod}}"))

	b.row("Storage and agent")
	b.add("timeseries", "Database sizes", "", "bytes", 8, 8, q(sel(`max by (database) (datafleet_postgres_database_size_bytes{SEL})`), "{{database}}"))
	b.add("timeseries", "Volume used", "", "percentunit", 8, 8,
		q(sel(`1 - datafleet_member_volume_available_bytes{SEL} / datafleet_member_volume_size_bytes{SEL}`), "{{pod}}"))
	b.add("timeseries", "Agent memory", "Resident memory of each pod's agent (the exporter's cost included).", "bytes", 8, 8,
		q(sel(`datafleet_agent_process_resident_memory_bytes{SEL}`), "{{pod}}"))
	return b.d
}
