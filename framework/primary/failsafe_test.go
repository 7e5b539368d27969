package primary_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/framework/primary"
)

// The failsafe against a real API server: three keepers on one lease, each with its own client
// that can be taken down. The pod network between their agents is a stand-in (network), which
// hands a question straight to the other keeper's Confirm, or black-holes it for a cut member;
// the HTTP hop in between is the PostgreSQL agent's action, tested in the end-to-end chaos step.

// network connects the keepers of one instance, by name (their "pod IPs" are their names).
type network struct {
	mu      sync.Mutex
	keepers map[string]*primary.Keeper
	cut     map[string]bool
}

func (n *network) isolate(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[name] = true
}

// peer is the network as seen from one member.
type peer struct {
	n    *network
	self string
}

func (p peer) Ask(ctx context.Context, ip, holder string) error {
	p.n.mu.Lock()
	k, cut := p.n.keepers[ip], p.n.cut[p.self] || p.n.cut[ip]
	p.n.mu.Unlock()
	if cut || k == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return k.Confirm(holder)
}

// replicaSet is db-0 (the primary) and db-1, db-2 (replicas) keeping one lease.
type replicaSet struct {
	key     types.NamespacedName
	net     *network
	members map[string]*member
	clients map[string]*hangingClient
	stops   map[string]chan stopped
}

func startReplicaSet(t *testing.T) *replicaSet { return startMembers(t, true) }

// startMembers starts the replica set; listed says whether the operator lists the members.
func startMembers(t *testing.T, listed bool) *replicaSet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "failsafe-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{key: types.NamespacedName{Namespace: ns.Name, Name: "db-primary"},
		net:     &network{keepers: map[string]*primary.Keeper{}, cut: map[string]bool{}},
		members: map[string]*member{}, clients: map[string]*hangingClient{}, stops: map[string]chan stopped{}}
	l, err := primary.Ensure(ctx, env.Client, rs.key, nil, nil, "db-0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if listed {
		if _, err := primary.SetMembers(ctx, env.Client, l, map[string]string{"db-0": "db-0", "db-1": "db-1", "db-2": "db-2"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		m := &member{}
		m.primary.Store(name == "db-0")
		hc := &hangingClient{Client: env.Client}
		k := &primary.Keeper{Client: hc, Key: rs.key, Identity: name, Peers: peer{rs.net, name}}
		rs.net.keepers[name], rs.members[name], rs.clients[name] = k, m, hc
		if _, err := k.Claim(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan stopped, 1)
		rs.stops[name] = done
		go func() {
			err := k.Keep(ctx, m)
			done <- stopped{err, time.Now()}
		}()
	}
	// The primary has renewed naming its confirmers, and the replicas have seen it hold the lease.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := rs.lease(t)
		if !listed && time.Since(primary.Read(l).RenewTime) < time.Second {
			if c, named := l.Annotations[primary.ConfirmersAnnotation]; named {
				t.Fatalf("the members are not listed, yet the holder named confirmers %q", c)
			}
			break
		}
		if l.Annotations[primary.ConfirmersAnnotation] == "db-1,db-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the primary did not name its confirmers: %v", l.Annotations)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	return rs
}

func (rs *replicaSet) lease(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(context.Background(), rs.key, l); err != nil {
		t.Fatal(err)
	}
	return l
}

// apiServerDown takes the API server away from the named members.
func (rs *replicaSet) apiServerDown(names ...string) {
	for _, n := range names {
		rs.clients[n].setDown(true)
	}
}

// running fails the test if a member's keeper stopped.
func (rs *replicaSet) running(t *testing.T, name string) {
	t.Helper()
	select {
	case s := <-rs.stops[name]:
		t.Fatalf("%s stopped at %s: %v", name, s.at.Format(time.StampMilli), s.err)
	default:
	}
}

// fenced waits for a member to fence and returns when it did.
func (rs *replicaSet) fenced(t *testing.T, name string, within time.Duration) time.Time {
	t.Helper()
	select {
	case s := <-rs.stops[name]:
		var stop *primary.Stop
		if !errors.As(s.err, &stop) || !stop.Fence {
			t.Fatalf("%s returned %v, want a fence", name, s.err)
		}
		t.Logf("%s fenced: %s", name, stop.Reason)
		return s.at
	case <-time.After(within):
		t.Fatalf("%s did not fence within %s", name, within)
	}
	return time.Time{}
}

// When the API server is away for every member, the primary serves on, for as long as its
// replicas confirm it; when it is then cut off from them too, it fences within FenceAfter (and
// one round of asking) of the cut.
func TestAnAPIServerOutageFencesNoPrimary(t *testing.T) {
	t.Parallel()
	rs := startReplicaSet(t)
	rs.apiServerDown("db-0", "db-1", "db-2")
	time.Sleep(3 * primary.FenceAfter)
	rs.running(t, "db-0")
	if renewed := primary.Read(rs.lease(t)).RenewTime; time.Since(renewed) < 3*primary.FenceAfter {
		t.Fatalf("the lease was renewed %s ago: the API server was not away", time.Since(renewed))
	}
	rs.net.isolate("db-0")
	cut := time.Now()
	after := rs.fenced(t, "db-0", primary.FenceAfter+primary.CallTimeout+2*time.Second).Sub(cut)
	if after > primary.FenceAfter+time.Second {
		t.Errorf("fenced %s after it was cut off from its replicas, want at most %s", after, primary.FenceAfter+time.Second)
	}
	t.Logf("served %s without the API server; fenced %s after it was cut off from its replicas", 3*primary.FenceAfter, after.Round(time.Millisecond))
}

// When the API server comes back, the replicas may read the lease well before the holder's
// renewal gets through (a busy API server answers its reconnecting clients in no particular
// order). The holder must not fence at the end of the outage it served through: members back
// from an outage go on confirming it for a while. Here the holder gets its API server back
// FenceAfter and a second after its replicas (whose calls in flight are answered at once, as a
// resumed API server answers them); without that while, it fences before.
func TestAPrimaryWhoseAPIServerComesBackLastServesOn(t *testing.T) {
	t.Parallel()
	rs := startReplicaSet(t)
	rs.apiServerDown("db-0", "db-1", "db-2")
	time.Sleep(2 * primary.FenceAfter)
	rs.running(t, "db-0")
	rs.clients["db-1"].setDown(false)
	rs.clients["db-2"].setDown(false)
	time.Sleep(primary.FenceAfter + time.Second)
	rs.running(t, "db-0")
	back := time.Now()
	rs.clients["db-0"].setDown(false)
	deadline := back.Add(primary.FenceAfter)
	for primary.Read(rs.lease(t)).RenewTime.Before(back) {
		if time.Now().After(deadline) {
			t.Fatalf("db-0 did not renew the lease within %s of getting the API server back", primary.FenceAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(primary.FenceAfter) // a fence already due would have come by now
	rs.running(t, "db-0")
}

// A primary cut off from the API server alone fences as without the failsafe: its replicas read
// the lease and do not confirm it, so the operator may replace it once the lease expires.
func TestAPrimaryAloneWithoutTheAPIServerFences(t *testing.T) {
	t.Parallel()
	rs := startReplicaSet(t)
	rs.apiServerDown("db-0")
	at := rs.fenced(t, "db-0", 2*primary.LeaseDuration)
	after := at.Sub(primary.Read(rs.lease(t)).RenewTime)
	if after < primary.FenceAfter || after > primary.LeaseDuration-time.Second {
		t.Errorf("fenced %s after the last renewal, want between %s and %s", after, primary.FenceAfter, primary.LeaseDuration-time.Second)
	}
}

// The operator still reaches the API server when the members do not, and names db-1 once the
// lease expired. db-1, back in touch with the API server, stops confirming db-0 and promotes only
// after what it confirmed has lapsed: db-0 has fenced before, although db-2 still confirms it.
func TestAnElectedMemberPromotesAfterTheOldPrimaryFenced(t *testing.T) {
	t.Parallel()
	rs := startReplicaSet(t)
	rs.apiServerDown("db-0", "db-1", "db-2")
	var l *coordinationv1.Lease
	for { // the operator's view: the lease expires LeaseDuration after its last renewal
		l = rs.lease(t)
		if primary.Read(l).Vacant(time.Now()) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	rs.running(t, "db-0")
	if !primary.Read(l).Electable("db-1") || primary.Read(l).Electable("db-3") {
		t.Fatalf("electable: db-1 %v, db-3 %v; want only the holder's confirmers", primary.Read(l).Electable("db-1"), primary.Read(l).Electable("db-3"))
	}
	if _, err := primary.Assign(context.Background(), env.Client, l, "db-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	rs.clients["db-1"].setDown(false)
	fencedAt := rs.fenced(t, "db-0", primary.FenceAfter+primary.CallTimeout+3*time.Second)
	deadline := time.Now().Add(primary.FenceAfter + 5*time.Second)
	for rs.members["db-1"].promotedAt.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("db-1 was not promoted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	promotedAt := time.Unix(0, rs.members["db-1"].promotedAt.Load())
	if !promotedAt.After(fencedAt) {
		t.Fatalf("db-1 was promoted at %s, before db-0 fenced at %s", promotedAt.Format(time.StampMilli), fencedAt.Format(time.StampMilli))
	}
	t.Logf("db-0 fenced, then db-1 was promoted %s later", promotedAt.Sub(fencedAt).Round(time.Millisecond))
}

// Without the members listed on the lease (an operator without failsafe), the holder names no
// confirmers, so the operator may elect any member, and it has no failsafe: it fences.
func TestWithoutListedMembersThereIsNoFailsafe(t *testing.T) {
	t.Parallel()
	rs := startMembers(t, false)
	rs.apiServerDown("db-0", "db-1", "db-2")
	rs.fenced(t, "db-0", 2*primary.LeaseDuration)
	if l := rs.lease(t); !primary.Read(l).Electable("db-3") {
		t.Errorf("a member the holder did not name is not electable: %v", l.Annotations)
	}
}
