package main

// mongodbOnly marks a panel whose figure only mongod reports: FerretDB, the only server these
// machines run, does not (docs/observability.md), so the end-to-end check of panels passes over
// them and says so.
const mongodbOnly = " (mongod only)"

// mongodb is the MongoDB dashboard: what each member's agent reads through the driver.
func mongodb() dashboard {
	b, sel := engineBoard("mongodb", "Datafleet: MongoDB", "MongoDB instances as their agents see them (datafleet_mongodb_*); a figure the server does not report is absent.", `datafleet_mongodb_up`)
	b.row("Members")
	b.add("stat", "Members ready", "", "none", 6, 4, q(sel(`sum(datafleet_member_ready{SEL})`), ""))
	b.add("table", "Roles", "Each member's role as the replica set says.", "none", 10, 4, q(sel(`datafleet_member_role{SEL}`), ""))
	b.add("stat", "Status readable", "The agent reads serverStatus as the operator's administrator.", "none", 8, 4,
		q(sel(`min(datafleet_mongodb_up{SEL})`), ""))

	b.row("Load and replication")
	b.add("timeseries", "Connections", "Current, and how many more the server accepts."+mongodbOnly, "none", 12, 8,
		q(sel(`sum by (pod, state) (datafleet_mongodb_connections{SEL})`), "{{pod}} {{state}}"))
	b.add("timeseries", "Operations per second", "By type (opcounters)."+mongodbOnly, "ops", 12, 8,
		q(sel(`sum by (type) (rate(datafleet_mongodb_operations_total{SEL}[5m]))`), "{{type}}"))
	b.add("timeseries", "Replication lag", "How far each secondary trails the primary."+mongodbOnly, "s", 12, 8,
		q(sel(`max by (member) (datafleet_mongodb_replication_lag_seconds{SEL})`), "{{member}}"))
	b.add("timeseries", "Oplog window", "How long a member may be away and still catch up."+mongodbOnly, "s", 12, 8,
		q(sel(`min by (pod) (datafleet_mongodb_oplog_window_seconds{SEL})`), "{{pod}}"))

	b.row("Storage and agent")
	b.add("timeseries", "Volume used", "", "percentunit", 12, 8,
		q(sel(`1 - datafleet_member_volume_available_bytes{SEL} / datafleet_member_volume_size_bytes{SEL}`), "{{pod}}"))
	b.add("timeseries", "Agent memory", "Resident memory of each pod's agent (the exporter's cost included).", "bytes", 12, 8,
		q(sel(`datafleet_agent_process_resident_memory_bytes{SEL}`), "{{pod}}"))
	return b.d
}
