package apply

import (
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// OwnWrites remembers, for each object a reconciler writes, the versions of it that the
// reconciler's last writes replaced. A reconcile that reads one of them from the cache reads the
// object as it was before the operator's own last write, whose watch event has not reached the
// cache yet: what it would compute is stale (a binding's credentials, a backup's step), and its
// status write would be refused with 409 Conflict (the envtest tiers on a loaded machine showed
// one to four per three new instances; CI's end-to-end run, 42 "Reconciler error"s in seven
// minutes of bindings, backups and restores). It waits for that event instead. The cache only
// moves forward, so the last write's replaced versions are all there is to remember; an entry
// goes once a reconcile reads a newer version, or the object is gone. The zero value is ready.
type OwnWrites struct {
	replaced sync.Map // types.NamespacedName → versions (comparable, for CompareAndDelete)
}

// versions are the resourceVersions a reconcile's writes replaced: the one it read, and the one
// its own write to the object (the finalizer, an annotation) returned before its status patch.
type versions [2]string

// Wrote records that this reconciler's writes replaced the versions read and between (which may
// be the same) of the object.
func (o *OwnWrites) Wrote(key types.NamespacedName, read, between string) {
	o.replaced.Store(key, versions{read, between})
}

// Stale reports whether rv, read from the cache, is a version this reconciler's last writes
// replaced; it forgets the object once the cache shows a later one.
func (o *OwnWrites) Stale(key types.NamespacedName, rv string) bool {
	v, ok := o.replaced.Load(key)
	if !ok {
		return false
	}
	if vs := v.(versions); rv == vs[0] || rv == vs[1] {
		return true
	}
	o.replaced.CompareAndDelete(key, v)
	return false
}

// Gone forgets a deleted object.
func (o *OwnWrites) Gone(key types.NamespacedName) { o.replaced.Delete(key) }

// LookAgain is when a reconcile that read a stale object, or whose write conflicted, runs again
// if no event brings the object back sooner.
const LookAgain = time.Second

// StaleRead is the result of a reconcile that read a version its reconciler's own last write
// replaced: nothing is done, the write's event brings the object back (the requeue in case it was
// filtered out).
func StaleRead() (ctrl.Result, error) { return ctrl.Result{RequeueAfter: LookAgain}, nil }

// QuietConflict turns a reconcile's 409 Conflict into a look again shortly, without an error:
// the object changed under the reconcile (another writer, or a cache behind the operator's own
// write) and the next reconcile computes everything again from what is there then. Logged as a
// "Reconciler error" with a stack and counted in controller_runtime_reconcile_errors_total, it
// is noise on the dashboard's error panel that hides real failures.
func QuietConflict(res ctrl.Result, err error) (ctrl.Result, error) {
	if err != nil && apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: LookAgain}, nil
	}
	return res, err
}
