package controllers

// Labels and annotations the backup kinds use.
const (
	// PlanLabel marks a Backup made by a BackupPlan (the plan's name).
	PlanLabel = "datafleet.dev/backup-plan"
	// HoldLabel "true" keeps a Backup from being pruned, like spec.hold.
	HoldLabel = "datafleet.dev/hold"
	// RestoredByAnnotation marks an instance a Restore created (the Restore's name).
	RestoredByAnnotation = "datafleet.dev/restored-by"
	// RestoredAnnotation records the last Restore applied to an instance; changing it makes the
	// instance's bindings ensure their users again (a restore may have replaced vhosts or grants).
	RestoredAnnotation = "datafleet.dev/last-restore"
	// DrillLabel marks a scratch instance and Restore of a plan's verification drill.
	DrillLabel = "datafleet.dev/drill-of"
)
