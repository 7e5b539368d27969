package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// The StatefulSet still counts a pod ready for a moment after its container exited (a primary
// that stepped down restarts as a replica): the instance is Ready only when every member's agent
// says its postgres serves. Once seen in e2e: Ready, then psql on the restarting member failed.
func TestReadyWaitsForEveryMembersAgent(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Replicas: ptr.To(int32(3))}}
	pods := make([]corev1.Pod, 4) // ledger-3 is left over from a scale-down: not a member any more
	for i := range pods {
		pods[i].Name = "ledger-" + string(rune('0'+i))
	}
	pos := &primary.Position{History: 2, Offset: 100}
	supervised := func(statuses ...*fwagent.Status) engine.Observation {
		now := time.Now()
		s := &supervision{
			Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Instance: inst, Now: now},
				Observation: engine.Observation{Ready: true, Replicas: 3, ReadyReplicas: 3}, Pods: pods[:len(statuses)]},
			state: primary.State{Holder: "ledger-0", RenewTime: now},
		}
		for i := range statuses {
			s.members = append(s.members, member{pod: &pods[i], status: statuses[i]})
		}
		s.report()
		obs, _ := s.Result()
		return obs
	}
	primaryUp := &fwagent.Status{Ready: true, Role: RolePrimary, Position: pos}
	replicaUp := &fwagent.Status{Ready: true, Role: RoleReplica, Position: pos}

	if obs := supervised(primaryUp, replicaUp, replicaUp, nil); !obs.Ready || obs.CurrentPrimary != "ledger-0" {
		t.Fatalf("every member serves: %+v", obs)
	}
	for unready, statuses := range map[string][]*fwagent.Status{
		"ledger-2": {primaryUp, replicaUp, nil},
		"ledger-1": {primaryUp, {Role: RoleReplica, Detail: "the database system is starting up"}, replicaUp},
	} {
		obs := supervised(statuses...)
		if obs.Ready || obs.Reason != "MemberNotReady" || !strings.HasPrefix(obs.Message, unready+"'s agent") {
			t.Errorf("%s is not serving: Ready %v, %s: %s", unready, obs.Ready, obs.Reason, obs.Message)
		}
	}
}

// The operator sees each renewal of the lease as it arrives (the watch) and reconciles only when
// the lease would lapse (the watch's Expires wakes the instance then): a renewal starts no
// reconcile, and a holder that stops renewing is replaced 10 s after its last renewal, not at the
// next poll (once measured in e2e, when a reconcile was what observed renewals: 23 s to a new
// primary). The wake itself is framework/instance's (TestAnObjectWakesItsInstanceWhenItLapses).
func TestRenewalsAreObservedAsTheyArrive(t *testing.T) {
	e := New()
	lease := func(renew time.Time, holder string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "ledger-primary", Namespace: "apps"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(10)),
				RenewTime: &metav1.MicroTime{Time: renew}}}
	}
	renewed := time.Now()
	old, cur := lease(renewed.Add(-primary.RenewInterval), "ledger-0"), lease(renewed, "ledger-0")
	var leaseWatch engine.Watch
	for _, w := range e.Watches() {
		if _, ok := w.Type.(*coordinationv1.Lease); ok {
			leaseWatch = w
		}
	}
	for _, p := range leaseWatch.Predicates {
		if p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: cur}) {
			t.Fatal("a renewal started a reconcile")
		}
	}
	at := leaseWatch.Expires(cur)
	if want := renewed.Add(primary.LeaseDuration + lapseMargin); !at.Equal(want) {
		t.Errorf("the lease renewed at %s wakes its instance at %s, want %s (its last renewal plus %s and %s)",
			renewed.Format(time.StampMilli), at.Format(time.StampMilli), want.Format(time.StampMilli), primary.LeaseDuration, lapseMargin)
	}
	key := types.NamespacedName{Namespace: "apps", Name: "ledger-primary"}
	if s := e.leases.Observe(key, primary.Read(cur), at); !s.Vacant(at) {
		t.Errorf("the lease renewed at %s is not vacant when it wakes its instance, at %s: it expires at %s",
			renewed.Format(time.StampMilli), at.Format(time.StampMilli), s.ExpiresAt().Format(time.StampMilli))
	}
	if at := leaseWatch.Expires(lease(renewed, "")); !at.IsZero() {
		t.Errorf("a lease with no holder wakes its instance at %s: nothing lapses", at)
	}
}

// A switchover waits until its target streams from the primary: the primary's clean shutdown
// hands its last WAL only to connected replicas.
func TestASwitchoverWaitsForItsTargetToStream(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Replicas: ptr.To(int32(2)), Primary: "ledger-1"}}
	pods := []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "ledger-0"}}, {ObjectMeta: metav1.ObjectMeta{Name: "ledger-1"}}}
	pos := &primary.Position{History: 2, Offset: 100}
	s := &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Instance: inst, Now: time.Now()}, Pods: pods},
		state: primary.State{Holder: "ledger-0", RenewTime: time.Now()},
		members: []member{
			{pod: &pods[0], status: &fwagent.Status{Ready: true, Role: RolePrimary, Position: pos,
				Replicas: []fwagent.ReplicaStatus{{Name: "ledger-1", State: "catchup"}}}},
			{pod: &pods[1], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: pos}}}}
	// No client: asking for the step-down would fail the test.
	if done, err := s.switchover(context.Background()); err != nil || !done {
		t.Fatalf("switchover: %v, %v", done, err)
	}
	if !strings.Contains(s.NotReady.Message, "waiting for ledger-1 to stream from ledger-0") {
		t.Errorf("the switchover does not wait for its target to stream: %s: %s", s.NotReady.Reason, s.NotReady.Message)
	}
}
