package apply

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A version a reconciler's last writes replaced is stale until the cache shows a later one; then
// the object is forgotten, and an older version read after that (a cache only moves forward, so
// never) would not be held back.
func TestOwnWritesHoldBackOnlyWhatTheLastWritesReplaced(t *testing.T) {
	var o OwnWrites
	key := types.NamespacedName{Namespace: "apps", Name: "b"}
	if o.Stale(key, "1") {
		t.Fatal("an object this reconciler never wrote is stale")
	}
	o.Wrote(key, "1", "2") // read 1, the finalizer made 2, the status patch 3
	for _, rv := range []string{"1", "2"} {
		if !o.Stale(key, rv) {
			t.Errorf("version %s, which the writes replaced, is not stale", rv)
		}
	}
	if o.Stale(key, "3") {
		t.Error("the version the last write made is stale")
	}
	if o.Stale(key, "2") {
		t.Error("the object was not forgotten once the cache showed the last write")
	}
	o.Wrote(key, "3", "3")
	o.Gone(key)
	if o.Stale(key, "3") {
		t.Error("a deleted object is remembered")
	}
}

// A conflict, also wrapped, is a look again without an error; any other error stays.
func TestQuietConflict(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "datafleet.dev", Resource: "backups"}, "b", errors.New("the object has been modified"))
	for _, err := range []error{conflict, fmt.Errorf("writing status: %w", conflict)} {
		if res, got := QuietConflict(ctrl.Result{}, err); got != nil || res.RequeueAfter != LookAgain {
			t.Errorf("%v: got %v, %+v; want no error and a look again after %s", err, got, res, LookAgain)
		}
	}
	other := errors.New("the store is unreachable")
	if res, got := QuietConflict(ctrl.Result{RequeueAfter: 5}, other); got != other || res.RequeueAfter != 5 {
		t.Errorf("another error became %v, %+v", got, res)
	}
}
