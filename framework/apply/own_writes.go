package instance

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// ownWrites remembers, for each instance, the versions of it that this reconciler's last writes
// replaced. A reconcile that reads one of them from the cache reads the instance as it was before
// the operator's own last write, whose watch event has not reached the cache yet: what it would
// compute is stale, and its status write would be refused with 409 Conflict (the envtest tiers on
// a loaded machine showed one to four per three new instances). It waits for that event instead. The cache only moves forward, so the last write's replaced
// versions are all there is to remember; an entry goes once a reconcile reads a newer version, or
// the instance is gone.
type ownWrites struct {
	replaced sync.Map // types.NamespacedName → versions (comparable, for CompareAndDelete)
}

// versions are the resourceVersions a reconcile's writes replaced: the one it read, and the one
// its own write to the instance (the finalizer, an annotation) returned before its status patch.
type versions [2]string

// wrote records that this reconciler's writes replaced the versions read and between (which may
// be the same) of the instance.
func (o *ownWrites) wrote(key types.NamespacedName, read, between string) {
	o.replaced.Store(key, versions{read, between})
}

// stale reports whether rv, read from the cache, is a version this reconciler's last writes
// replaced; it forgets the instance once the cache shows a later one.
func (o *ownWrites) stale(key types.NamespacedName, rv string) bool {
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

// gone forgets a deleted instance.
func (o *ownWrites) gone(key types.NamespacedName) { o.replaced.Delete(key) }
