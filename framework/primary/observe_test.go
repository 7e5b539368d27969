package primary

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// A holder whose clock is 6 s behind the operator's renews at t0 (absolute) and writes t0-6s. By
// the renew time alone the lease expires at t0+4s, before the holder fences (t0+6.1s). Observed,
// it expires no earlier than 8 s after the operator first saw that renewal; a later renewal
// moves it on; with clocks in agreement the renew time still decides.
func TestAnObservedLeaseDoesNotExpireBeforeItsHolderFenced(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "db-primary"}
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	behind := State{Holder: "db-0", RenewTime: t0.Add(-6 * time.Second), Duration: LeaseDuration}
	if !behind.Vacant(t0.Add(4 * time.Second)) {
		t.Fatal("the test's premise: by its renew time alone the lease is vacant at t0+4s")
	}
	o := NewObserver()
	o.Observe(key, behind, t0) // the operator sees the renewal as it happens
	for _, at := range []time.Duration{4 * time.Second, 6500 * time.Millisecond, 7900 * time.Millisecond} {
		if o.Observe(key, behind, t0.Add(at)).Vacant(t0.Add(at)) {
			t.Errorf("vacant at t0+%s, before the holder's fence (t0+%s) and its margin", at, FenceAfter)
		}
	}
	if !o.Observe(key, behind, t0.Add(8*time.Second)).Vacant(t0.Add(8 * time.Second)) {
		t.Error("not vacant at t0+8s")
	}

	renewed := behind
	renewed.RenewTime = renewed.RenewTime.Add(2 * time.Second)
	if o.Observe(key, renewed, t0.Add(9*time.Second)).Vacant(t0.Add(12 * time.Second)) {
		t.Error("a renewal first seen at t0+9s expired at t0+12s")
	}

	// Clocks in agreement: the renew time plus the lease's duration is the later, as before.
	other := types.NamespacedName{Namespace: "shop", Name: "other-primary"}
	inSync := State{Holder: "db-0", RenewTime: t0, Duration: LeaseDuration}
	if s := o.Observe(other, inSync, t0); !s.ExpiresAt().Equal(t0.Add(LeaseDuration)) {
		t.Errorf("in sync: expires at %s, want %s", s.ExpiresAt(), t0.Add(LeaseDuration))
	}
	var none *Observer
	if s := none.Observe(key, behind, t0); !reflect.DeepEqual(s, behind) {
		t.Error("a nil Observer changed the state")
	}
}
