package engine

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/maintenance"
)

// ContinuousArchiver is implemented by engines whose primary archives its write-ahead log to a
// BackupStore while it runs (spec.backup.continuous). Before Render the framework resolves the
// store, which the platform's policy must allow (RenderInput.Archive); the engine's pods archive
// each completed segment through the segment archive (framework/backup.SegmentArchive, the
// command "manager segments push"), and its Supervisor reports the primary's archiver
// (Observation.Archive), which the framework turns into the condition ContinuousArchiving.
//
// Retention removes from the archive what no physical Backup left needs (each base backup records
// the segment its replay starts at); only the engine knows how its segments' names order.
type ContinuousArchiver interface {
	// Superseded reports whether the archived segment named segment comes before a base backup
	// whose replay starts at the segment start, on its timeline or an earlier one: no restore of
	// that backup replays it. Names that are not segments (history files) are never superseded.
	Superseded(segment, start string) bool
}

// ArchiveInput is where an instance's continuous archive goes.
type ArchiveInput struct {
	// Store is the instance's spec.backup.storeRef, allowed by the platform's policy.
	Store *v1alpha1.BackupStore
	// Dir is the instance's archive under the store's prefix (ArchiveDir).
	Dir string
	// Timeout is the instance's archive timeout.
	Timeout time.Duration
}

// ArchiveDir is an instance's archive under its store's prefix: named after what the instance is
// called, not its UID, so that another cluster finds it (review of #29). An instance deleted and
// made again under the same name starts a new database system, which the segment command keeps
// apart by its system identifier (a subdirectory); a restore in place continues the same one on a
// new timeline, as PostgreSQL intends.
func ArchiveDir(namespace, instance string) string {
	return "wal/" + namespace + "/" + instance
}

// NewArchiveInput is the ArchiveInput of an instance with continuous archiving to store.
func NewArchiveInput(inst *v1alpha1.ServiceInstance, store *v1alpha1.BackupStore) *ArchiveInput {
	return &ArchiveInput{Store: store, Dir: ArchiveDir(inst.Namespace, inst.Name), Timeout: inst.Continuous().Timeout()}
}

// ValidateSpec is every check of an instance's spec beyond its schema that the framework and
// the engine make, at admission (the webhook) and again in the reconcile: the maintenance
// window's time zone, continuous archiving only where the engine has it, and the engine's own.
func ValidateSpec(e Engine, inst *v1alpha1.ServiceInstance, rel catalog.Release) field.ErrorList {
	errs := maintenance.Validate(inst.Spec.MaintenanceWindow, field.NewPath("spec", "maintenanceWindow"))
	errs = append(errs, validateContinuous(e, inst)...)
	return append(errs, e.Validate(inst, rel)...)
}

// validateContinuous refuses spec.backup.continuous for an engine that cannot archive.
func validateContinuous(e Engine, inst *v1alpha1.ServiceInstance) field.ErrorList {
	if inst.Continuous() == nil {
		return nil
	}
	if _, ok := e.(ContinuousArchiver); !ok {
		return field.ErrorList{field.Forbidden(field.NewPath("spec", "backup", "continuous"),
			"the "+e.Name()+" engine has no continuous archiving; its backups are taken by Backup and BackupPlan")}
	}
	return nil
}
