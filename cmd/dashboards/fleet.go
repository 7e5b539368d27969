package main

// fleet is the platform team's dashboard: every instance of every engine, what waits on them, and
// how their backups fare. Its figures come from the operator (framework/fleet).
func fleet() dashboard {
	b := newBoard("fleet", "Datafleet: fleet", "Every instance of every engine, what waits on them, and their backups.")
	b.row("Instances")
	b.add("stat", "Instances", "Every ServiceInstance.", "none", 4, 4, q(`count(datafleet_instance_info)`, ""))
	b.add("stat", "Not Ready", "Instances whose Ready condition is not True.", "none", 4, 4,
		q(`count(datafleet_instance_ready == 0) or vector(0)`, ""))
	b.add("stat", "Pending restarts", "Restarts the operator holds back (docs/upgrades.md).", "none", 4, 4,
		q(`count(datafleet_instance_pending_restart) or vector(0)`, ""))
	b.add("stat", "Bindings", "ServiceBindings of every instance.", "none", 4, 4, q(`sum(datafleet_instance_bindings) or vector(0)`, ""))
	b.add("stat", "Pods ready", "Ready pods of every instance, of those they should run.", "percentunit", 8, 4,
		q(`sum(datafleet_instance_ready_replicas) / sum(datafleet_instance_replicas)`, ""))
	b.add("timeseries", "Instances by engine and version", "", "none", 12, 8,
		q(`count by (engine, version) (datafleet_instance_info)`, "{{engine}} {{version}}"))
	b.add("timeseries", "Instances by phase", "", "none", 12, 8, q(`count by (phase) (datafleet_instance_info)`, "{{phase}}"))
	b.add("table", "Readiness", "1: Ready.", "none", 12, 8, q(`datafleet_instance_ready`, ""))
	b.add("table", "Instances by plan", "", "none", 12, 8, q(`count by (engine, serviceplan) (datafleet_instance_info)`, ""))
	b.add("table", "Members", "Every pod with its role and state, as the operator last saw it.", "none", 24, 8,
		q(`datafleet_instance_member`, ""))

	b.row("Lifecycle")
	b.add("table", "Days to sundown", "Days until an instance's version leaves its catalog (negative: it has left).", "d", 12, 8,
		q(`(datafleet_instance_version_sundown_timestamp_seconds - time()) / 86400`, ""))
	b.add("table", "Certificates: days left", "Days until each instance's server certificate or CA ends.", "d", 12, 8,
		q(`(datafleet_instance_certificate_expiry_timestamp_seconds - time()) / 86400`, ""))
	b.add("table", "Bindings: password age", "Days since each binding's credentials were issued (its first, or its last rotation).", "d", 12, 8,
		q(`(time() - datafleet_binding_credentials_issued_timestamp_seconds) / 86400`, ""))
	b.add("timeseries", "Pending restarts by reason", "", "none", 12, 8,
		q(`count by (reason) (datafleet_instance_pending_restart) or on () vector(0)`, "{{reason}}"))

	b.row("Backups")
	b.add("table", "Hours since the last good backup", "Per plan; a plan is late after twice its schedule's interval.", "h", 12, 8,
		q(`(time() - datafleet_backupplan_last_success_timestamp_seconds) / 3600`, ""))
	b.add("table", "Last drill", "1: the last restore drill passed; how long it took; for a point-in-time drill, the data-loss window it achieved (recovery point) and its restore time.", "none", 12, 8,
		q(`datafleet_backupplan_drill_passed`, ""), q(`datafleet_backupplan_drill_duration_seconds`, ""),
		q(`datafleet_backupplan_drill_recovery_point_seconds`, ""), q(`datafleet_backupplan_drill_recovery_time_seconds`, ""))
	b.add("timeseries", "Size of the last good backup", "", "bytes", 24, 8,
		q(`datafleet_backupplan_last_success_size_bytes`, "{{namespace}}/{{backupplan}}"))

	b.row("Operator")
	b.add("timeseries", "Reconciles per second", "By controller (one per engine).", "ops", 8, 8,
		q(`sum by (controller) (rate(controller_runtime_reconcile_total[5m]))`, "{{controller}}"))
	b.add("timeseries", "Reconcile errors per second", "", "ops", 8, 8,
		q(`sum by (controller) (rate(controller_runtime_reconcile_errors_total[5m]))`, "{{controller}}"))
	b.add("timeseries", "Reconcile time, 99th percentile", "", "s", 8, 8,
		q(`histogram_quantile(0.99, sum by (controller, le) (rate(controller_runtime_reconcile_time_seconds_bucket[5m])))`, "{{controller}}"))
	return b.d
}
