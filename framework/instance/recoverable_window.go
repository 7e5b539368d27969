package instance

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// The recoverable window of an archiving instance (status.recoverableWindow) runs from the
// completion of its oldest physical Backup in the archive's store to the newest segment its
// primary archived. The Restore controller reads it to refuse, or wait for, a targetTime outside it.

// findOldestBase looks up, for an instance that archives, the completion of its oldest completed
// physical Backup in the archive's store (s.oldestBase; nil: none), from the cache. A Backup made
// before the instance was (an earlier instance of the same name, another database system) does not
// count: its log is not this instance's.
func (r *Reconciler) findOldestBase(ctx context.Context, s *scope) (bool, error) {
	if s.archive == nil {
		return false, nil
	}
	list := &v1alpha1.BackupList{}
	if err := r.Client.List(ctx, list, client.InNamespace(s.inst.Namespace)); err != nil {
		return false, err
	}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Spec.InstanceRef.Name != s.inst.Name || b.Spec.Method != v1alpha1.BackupPhysical || b.Status.Phase != v1alpha1.BackupCompleted ||
			b.Status.Store != s.archive.Store.Name || b.Status.CompletionTime == nil || !b.DeletionTimestamp.IsZero() ||
			b.CreationTimestamp.Before(&s.inst.CreationTimestamp) {
			continue
		}
		if s.oldestBase == nil || b.Status.CompletionTime.Before(s.oldestBase) {
			s.oldestBase = b.Status.CompletionTime.DeepCopy()
		}
	}
	s.windowChecked, s.windowNow = true, r.now()
	return false, nil
}

// recoverableWindow is the window from the oldest base backup and the primary's last archived
// segment (archived; nil when this reconcile did not hear from a primary), at now. Pure. The end
// never moves back (a new primary's archiver starts without a last segment), and it moves forward
// once a full archive timeout has passed since the end it shows (by the segments' time, or by the
// clock for a database that went quiet after its last segment), so that an instance under load
// writes its status once per timeout at most, not with every segment.
func recoverableWindow(prev *v1alpha1.RecoverableWindow, oldestBase *metav1.Time, archived *time.Time, every time.Duration, now time.Time) *v1alpha1.RecoverableWindow {
	if oldestBase == nil {
		return nil
	}
	w := &v1alpha1.RecoverableWindow{From: *oldestBase, To: *oldestBase}
	if prev != nil && prev.To.After(w.To.Time) {
		w.To = prev.To
	}
	due := prev == nil || !prev.From.Equal(&w.From) || now.Sub(w.To.Time) >= every
	if archived != nil && archived.After(w.To.Time) && due {
		w.To = metav1.NewTime(archived.UTC().Truncate(time.Second))
	}
	return w
}

// instanceOfBackup maps a physical Backup to its instance, whose window it may move.
func instanceOfBackup(_ context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*v1alpha1.Backup)
	if !ok || b.Spec.Method != v1alpha1.BackupPhysical {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.InstanceRef.Name}}}
}
