package primary_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/framework/primary"
)

// The operator records the members' addresses on a lease its holder renewed after the operator
// read it (its cache lags the renewals): the addresses are written, and the renewal stays.
func TestMembersAreRecordedOnALeaseRenewedSinceItWasRead(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "default", Name: "members-renewed"}
	read, err := primary.Ensure(ctx, env.Client, key, nil, nil, "db-0", time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	renewal := read.DeepCopy()
	renewedAt := time.Now().Truncate(time.Microsecond)
	renewal.Spec.RenewTime = &metav1.MicroTime{Time: renewedAt}
	if err := env.Client.Update(ctx, renewal); err != nil {
		t.Fatal(err)
	}
	members := map[string]string{"db-0": "198.18.0.10", "db-1": "198.18.0.11"}
	got, err := primary.SetMembers(ctx, env.Client, read, members)
	if err != nil {
		t.Fatalf("recording the members on a lease renewed since it was read: %v", err)
	}
	var l coordinationv1.Lease
	if err := env.Client.Get(ctx, key, &l); err != nil {
		t.Fatal(err)
	}
	s := primary.Read(&l)
	if len(s.Members) != 2 || s.Members["db-1"] != "198.18.0.11" {
		t.Errorf("the lease names the members %v, want %v", s.Members, members)
	}
	if !s.RenewTime.Equal(renewedAt) || s.Holder != "db-0" {
		t.Errorf("the lease says %s renewed at %s, want db-0 at %s (the renewal made after the read)", s.Holder, s.RenewTime, renewedAt)
	}
	if got.ResourceVersion != l.ResourceVersion {
		t.Errorf("SetMembers returned version %s of the lease, the API server has %s", got.ResourceVersion, l.ResourceVersion)
	}
}
