package controllers

import (
	"path"
	"strings"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// Dir is a Backup's directory in its store, under the store's prefix: namespace/instance/name-
// time. The creation time keeps a new Backup of an old name from meeting the old one's objects,
// and means something in any cluster, so that another can import the backup (a UID does not).
// The directory is recorded in status.path when the Job starts; an imported Backup names it in
// its spec; a Backup started by an operator before paths were recorded used its UID, and is read
// where it was written.
func Dir(b *v1alpha1.Backup) string {
	switch {
	case b.Spec.Import != nil:
		return b.Spec.Import.Path
	case b.Status.Path != "":
		return b.Status.Path
	case b.Status.Location != "":
		return path.Join(b.Namespace, b.Spec.InstanceRef.Name, b.Name+"-"+string(b.UID)[:8])
	}
	return path.Join(b.Namespace, b.Spec.InstanceRef.Name, b.Name+"-"+b.CreationTimestamp.UTC().Format("20060102-150405"))
}

// archiveDir is the continuous archive a physical backup's restore replays: its source
// instance's, which for an imported backup is in the namespace of the cluster that took it.
func archiveDir(b *v1alpha1.Backup) string {
	if b.Spec.Import != nil {
		ns, rest, _ := strings.Cut(b.Spec.Import.Path, "/")
		instance, _, _ := strings.Cut(rest, "/")
		return engine.ArchiveDir(ns, instance)
	}
	return engine.ArchiveDir(b.Namespace, b.Spec.InstanceRef.Name)
}
