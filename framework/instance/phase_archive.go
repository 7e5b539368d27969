package instance

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// Reasons of the ContinuousArchiving condition, and of a Failed instance whose archive's store
// cannot be used.
const (
	ReasonArchiving            = "Archiving"
	ReasonArchiveWaiting       = "WaitingForPrimary"
	ReasonArchiveFailing       = "ArchiveFailing"
	ReasonArchiveBehind        = "ArchiveBehind"
	ReasonArchiveStoreMissing  = "ArchiveStoreMissing"
	ReasonArchiveStoreRefused  = "ArchiveStoreNotAllowed"
	ReasonArchiveStoreNotShare = "ArchiveStoreNotShared"
)

// MaxArchiveBacklog is how many completed segments may wait for the archive before the condition
// ContinuousArchiving turns False (ArchiveBehind): 256 MiB of WAL that a lost volume would take
// with it, and that pg_wal keeps until they are stored, archiving never skips one.
const MaxArchiveBacklog = 16

// resolveArchive finds the store an instance's continuous archive goes to (engine.ContinuousArchiver
// with spec.backup.continuous), before Render mounts it. The store is checked as the backup
// controllers check it: the platform's policy, and a scheme the pods can reach (a file:// store
// would be each pod's own disk). Without a usable store nothing is rendered: rendering the pods
// without their archive, then with it, would restart them twice.
func (r *Reconciler) resolveArchive(ctx context.Context, s *scope) (bool, error) {
	if _, ok := r.Engine.(engine.ContinuousArchiver); !ok || s.inst.Continuous() == nil {
		return false, nil
	}
	name := s.inst.Spec.Backup.StoreRef.Name
	refuse := func(reason, msg string) (bool, error) {
		s.fail(reason, msg)
		s.archiveRefused = &metav1.Condition{Type: v1alpha1.ConditionContinuousArchiving, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
		return true, nil
	}
	bs := &v1alpha1.BackupStore{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.inst.Namespace, Name: name}, bs); err != nil {
		if apierrors.IsNotFound(err) {
			return refuse(ReasonArchiveStoreMissing, fmt.Sprintf("spec.backup.continuous archives to spec.backup.storeRef, and the BackupStore %q does not exist", name))
		}
		return false, describeErr("reading the archive's BackupStore", err)
	}
	if err := r.StorePolicy.Check(bs.Spec.URL, bs.Spec.CredentialsSecretRef != nil); err != nil {
		return refuse(ReasonArchiveStoreRefused, fmt.Sprintf("the BackupStore %q of spec.backup.continuous: %s", name, store.Redact(err.Error())))
	}
	if !store.ShareableURL(bs.Spec.URL) {
		return refuse(ReasonArchiveStoreNotShare, fmt.Sprintf("the BackupStore %q is not an object store the pods can reach (s3://, gs:// or azblob://); continuous archiving cannot use it", name))
	}
	s.archive = engine.NewArchiveInput(s.inst, bs)
	return false, nil
}

// archivingCondition is the ContinuousArchiving condition: why the store was refused, or what the
// primary's agent reported; nil when this reconcile learned neither (the condition stays as it
// was). Its message changes only when the state does (not with every segment), so that a settled
// instance's status stays still: the figures are metrics.
func archivingCondition(s *scope) *metav1.Condition {
	if s.archiveRefused != nil {
		return s.archiveRefused
	}
	if s.archive == nil || s.observation == nil {
		return nil
	}
	store := s.archive.Store.Name
	c := &metav1.Condition{Type: v1alpha1.ConditionContinuousArchiving, Status: metav1.ConditionTrue, Reason: ReasonArchiving,
		Message: fmt.Sprintf("the primary archives each completed segment to the BackupStore %q (archive_timeout %s)", store, s.archive.Timeout)}
	switch a := s.observation.Archive; {
	case a == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, ReasonArchiveWaiting, "no primary has reported its archiver yet"
	case a.Failing():
		c.Status, c.Reason = metav1.ConditionFalse, ReasonArchiveFailing
		c.Message = fmt.Sprintf("segment %s could not be archived to the BackupStore %q and is retried; the write-ahead log accumulates on the primary's volume until it is (the primary's log says why, its archive metrics count what waits)", a.LastFailed, store)
	case a.Backlog > MaxArchiveBacklog:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonArchiveBehind
		c.Message = fmt.Sprintf("more than %d completed segments wait for the BackupStore %q: the archive falls behind the writes", MaxArchiveBacklog, store)
	}
	return c
}

// instancesOfStore maps a BackupStore to the engine's instances that archive to it.
func (r *Reconciler) instancesOfStore(ctx context.Context, bs client.Object) []reconcile.Request {
	return r.instancesWhere(ctx, "a BackupStore change", func(si *v1alpha1.ServiceInstance) bool {
		return si.Namespace == bs.GetNamespace() && si.Continuous() != nil && si.Spec.Backup.StoreRef != nil &&
			si.Spec.Backup.StoreRef.Name == bs.GetName()
	})
}
