package binding_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Bindings made at once converge without a write refused with 409 Conflict, and each has one
// user. The finalizer's patch brings each binding back while its first status write is made; a
// reconcile that read the binding from the cache before that write's event arrived computed its
// status from a stale version, and its write was refused: CI's end-to-end log had twelve
// "Reconciler error"s of bindings in seven minutes. A reconcile that reads a version the
// reconciler's own last write replaced now waits for that write's event (apply.OwnWrites).
func TestBindingsConvergeWithoutAConflict(t *testing.T) {
	c, mgr, e := readyUsersInstance(t, nil)
	ctx := context.Background()
	mgr.WaitQuiet(t, time.Minute)
	before := mgr.Writes.Conflicts()
	const n = 8
	for i := range n {
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db"}, Role: v1alpha1.RoleReadWrite}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		var list v1alpha1.ServiceBindingList
		if err := c.List(ctx, &list, client.InNamespace("apps")); err != nil {
			return err
		}
		ready := 0
		for _, b := range list.Items {
			if meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready != n {
			return testenv.Errorf("%d of %d bindings Ready", ready, n)
		}
		return nil
	})
	mgr.WaitQuiet(t, time.Minute)
	if got := mgr.Writes.Conflicts() - before; got != 0 {
		t.Errorf("%d bindings converged with %d writes refused with 409 Conflict, want 0", n, got)
	}
	if users := e.Names(); len(users) != n {
		t.Errorf("%d bindings have %d users, want one each: %v", n, len(users), users)
	}
}
