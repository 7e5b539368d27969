package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A plan whose schedule never fires (admitted without the webhook, as before it existed) is
// reported InvalidSchedule, and the one plan worker it shares with a good plan is free: the good
// plan is scheduled. Before, `0 0 30 2 *` held its worker in an endless loop.
func TestAPlanThatNeverFiresHoldsNoWorker(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{fakeengine.New()}, operator.Options{MaxConcurrentReconciles: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	plan := func(name, schedule string) *v1alpha1.BackupPlan {
		p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: schedule, Suspend: true}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	never, good := plan("never", "0 0 30 2 *"), plan("good", "0 3 * * *")
	for _, k := range []struct {
		p      *v1alpha1.BackupPlan
		reason string
	}{{never, controllers.ReasonInvalidSchedule}, {good, controllers.ReasonSuspended}} {
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(k.p), k.p); err != nil {
				return err
			}
			if ready := meta.FindStatusCondition(k.p.Status.Conditions, "Ready"); ready == nil || ready.Reason != k.reason {
				return testenv.Errorf("plan %s: Ready %+v, want %s", k.p.Name, ready, k.reason)
			}
			return nil
		})
	}
}
