// Package controllers reconciles the backup kinds: BackupStore (a probe of the store), Backup (a
// dump Job, then the manifest's facts in status), Restore (a load Job into a new or the same
// instance) and BackupPlan (a schedule, retention and verification drills). The data never
// passes through the operator: the Jobs stream it (framework/backup/job).
package controllers
