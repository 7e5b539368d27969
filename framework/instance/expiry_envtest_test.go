package instance_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// lapsingEngine is the fake engine with a lease it watches as PostgreSQL's is watched: a new
// lease starts a reconcile, no change of it does, the instance polls once an hour, and the
// lease's expiry (Expires) is the only thing that can make it look before then. Its supervision
// reports the lease's holder as the current primary while the lease has not lapsed. (envtest
// runs no pods: the instance waits for its member throughout, which changes nothing here.)
type lapsingEngine struct{ fakeengine.Engine }

func (lapsingEngine) Name() string { return "lapsing" }

func (lapsingEngine) Watches() []engine.Watch {
	creations := predicate.Funcs{
		UpdateFunc: func(event.UpdateEvent) bool { return false }, DeleteFunc: func(event.DeleteEvent) bool { return false }}
	return []engine.Watch{{Type: &coordinationv1.Lease{}, Predicates: []predicate.Predicate{creations}, Expires: leaseExpiry}}
}

func leaseExpiry(o client.Object) time.Time {
	l := o.(*coordinationv1.Lease)
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
}

func (lapsingEngine) Supervise(ctx context.Context, s *engine.Supervision) error {
	var l coordinationv1.Lease
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: s.Instance.Namespace, Name: s.Instance.Name + "-lease"}, &l)
	if err == nil && time.Now().Before(leaseExpiry(&l)) {
		s.Observation.CurrentPrimary = ptr.Deref(l.Spec.HolderIdentity, "")
	} else if client.IgnoreNotFound(err) != nil {
		return err
	}
	s.Poll = time.Hour
	return nil
}

// A settled instance that polls once an hour is looked at again when a lease it watches lapses,
// with no event to say so: the framework's wake at the watch's Expires (expiry.go), wired into
// the engine's controller. (Without the wake the lease's holder stays primary for the hour.)
func TestALapsingLeaseWakesASettledInstance(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "lapse"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "lapsing", Version: "1"}}
	c := managertest.Settled(t, lapsingEngine{}, catalog.Release{Version: "1", Image: "fake:1"}, inst, func(inst *v1alpha1.ServiceInstance) error {
		if meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady) == nil {
			return testenv.Errorf("no Ready condition yet")
		}
		return nil
	})
	ctx := context.Background()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "ledger-lease", Namespace: "lapse", Labels: names.InstanceLabels("lapsing", "ledger")},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("ledger-0"), LeaseDurationSeconds: ptr.To(int32(5)),
			RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if err := c.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	primary := func(want string) func() error {
		return func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
				return err
			}
			if inst.Status.CurrentPrimary != want {
				return testenv.Errorf("the lease lapses at %s; at %s the instance's primary is %q, want %q",
					leaseExpiry(lease).Format(time.StampMilli), time.Now().Format(time.StampMilli), inst.Status.CurrentPrimary, want)
			}
			return nil
		}
	}
	testenv.Eventually(t, 30*time.Second, primary("ledger-0")) // the new lease's reconcile
	testenv.Eventually(t, 30*time.Second, primary(""))         // the wake when it lapsed
}
