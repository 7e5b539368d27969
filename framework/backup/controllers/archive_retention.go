package controllers

import (
	"context"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// An instance's continuous archive is kept for its physical backups: a restore replays it from a
// base backup's start segment on. When a physical Backup goes (retention, or someone deleted it),
// the segments that no physical Backup left in the same store needs go too: those each remaining
// base backup of the same database system supersedes (engine.ContinuousArchiver.Superseded). With
// no physical Backup left nothing is removed: the archive may be all a platform team has, and
// the next base backup decides again. Segments of other database systems (an earlier instance of
// the same name) are left to their own backups.

// pruneArchive removes the segments of b's instance's archive that the physical Backups left no
// longer need, and returns how many it removed. The base backups are read from their manifests,
// authenticated with the store's key: the store is tenant-writable.
func (r *BackupReconciler) pruneArchive(ctx context.Context, b *v1alpha1.Backup, st *store.Store, bs *v1alpha1.BackupStore) (int, error) {
	list := &v1alpha1.BackupList{}
	if err := r.Client.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return 0, err
	}
	starts := map[string][]string{} // system -> the start segments of its base backups left
	var archiver engine.ContinuousArchiver
	for i := range list.Items {
		o := &list.Items[i]
		if o.Name == b.Name || o.Spec.InstanceRef.Name != b.Spec.InstanceRef.Name || o.Spec.Method != v1alpha1.BackupPhysical ||
			o.Status.Phase != v1alpha1.BackupCompleted || o.Status.Store != bs.Name || !o.DeletionTimestamp.IsZero() ||
			archiveDir(o) != archiveDir(b) { // an imported backup replays its own cluster's archive
			continue
		}
		m, err := readManifest(ctx, r.APIReader, st, bs, Dir(o))
		if err != nil {
			return 0, fmt.Errorf("reading the manifest of Backup %q, whose log the archive keeps: %w", o.Name, err)
		}
		a, ok := r.Engines[m.Engine].(engine.ContinuousArchiver)
		if !ok || m.Base == nil || m.Base.System == "" || strings.Trim(m.Base.System, "0123456789") != "" {
			// Not one this operator can order the log of: keep everything rather than guess.
			return 0, nil
		}
		archiver = a
		starts[m.Base.System] = append(starts[m.Base.System], m.Base.StartSegment)
	}
	removed := 0
	for system, bases := range starts {
		archive := &backup.SegmentArchive{Store: st, Dir: path.Join(archiveDir(b), system)}
		segments, err := archive.List(ctx)
		if err != nil {
			return removed, err
		}
		for _, s := range segments {
			if !supersededByAll(archiver, s, bases) {
				continue
			}
			if err := archive.Delete(ctx, s); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// supersededByAll reports whether no base backup of starts replays the segment.
func supersededByAll(a engine.ContinuousArchiver, segment string, starts []string) bool {
	for _, start := range starts {
		if !a.Superseded(segment, start) {
			return false
		}
	}
	return len(starts) > 0
}
