package primary_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The keeper against a real API server. What hangs is a wrapper around the real client that stops
// answering and ignores its context (the worst a black-holed connection does), and the member is
// a stand-in for the database (the PostgreSQL agent's own member is tested in engines/postgres).

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.New(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

// hangingClient answers through the real client until hang is set, then never again; while it is
// down, its calls wait until it is up again (answered then, as a resumed API server answers what
// it had received) or fail at their deadline (an API server that is away, with a client that
// keeps its deadlines).
type hangingClient struct {
	client.Client
	hang atomic.Bool
	mu   sync.Mutex
	up   chan struct{} // nil while up; closed when it comes back
	// reads and writes count the requests the API server answered this agent.
	reads, writes atomic.Int64
}

// setDown takes the API server away from this client, or gives it back.
func (h *hangingClient) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case down && h.up == nil:
		h.up = make(chan struct{})
	case !down && h.up != nil:
		close(h.up)
		h.up = nil
	}
}

func (h *hangingClient) wait(ctx context.Context) error {
	if h.hang.Load() {
		select {} // ignores ctx: a call the deadline does not end
	}
	h.mu.Lock()
	up := h.up
	h.mu.Unlock()
	if up == nil {
		return nil
	}
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hangingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	err := h.Client.Get(ctx, key, obj, opts...)
	h.reads.Add(1)
	return err
}

func (h *hangingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	err := h.Client.Update(ctx, obj, opts...)
	h.writes.Add(1)
	return err
}

// member stands in for the database.
type member struct {
	primary    atomic.Bool
	hang       atomic.Bool   // IsPrimary never answers
	promoting  time.Duration // how long Promote takes
	promotedAt atomic.Int64  // when Promote returned (Unix nanoseconds)
}

func (m *member) IsPrimary(context.Context) (bool, error) {
	if m.hang.Load() {
		select {}
	}
	return m.primary.Load(), nil
}

func (m *member) Promote(ctx context.Context) error {
	select {
	case <-time.After(m.promoting):
		m.primary.Store(true)
		m.promotedAt.Store(time.Now().UnixNano())
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *member) Follow(context.Context, bool) error { return nil }

// keep creates a lease held by holder, and runs a keeper for identity on it until it stops; the
// channel gets its error and the time it returned.
func keep(t *testing.T, holder, identity string, m *member) (*primary.Keeper, *hangingClient, <-chan stopped) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "keeper-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: ns.Name, Name: "db-primary"}
	if _, err := primary.Ensure(ctx, env.Client, key, nil, nil, holder, time.Now()); err != nil {
		t.Fatal(err)
	}
	hc := &hangingClient{Client: env.Client}
	k := &primary.Keeper{Client: hc, Key: key, Identity: identity}
	if _, err := k.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan stopped, 1)
	go func() {
		err := k.Keep(ctx, m)
		done <- stopped{err, time.Now()}
	}()
	return k, hc, done
}

type stopped struct {
	err error
	at  time.Time
}

// lastRenewal reads the lease's renewTime from the API server.
func lastRenewal(t *testing.T, k *primary.Keeper) time.Time {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(context.Background(), k.Key, l); err != nil {
		t.Fatal(err)
	}
	return primary.Read(l).RenewTime
}

// renewsUntil fails the test if, before deadline, the keeper stops or its lease goes unrenewed
// for more than RenewInterval and 1.5 s; it looks every poll.
func renewsUntil(t *testing.T, k *primary.Keeper, done <-chan stopped, deadline time.Time, poll time.Duration) {
	t.Helper()
	for time.Now().Before(deadline) {
		select {
		case s := <-done:
			t.Fatalf("the keeper stopped: %v", s.err)
		case <-time.After(poll):
		}
		if age := time.Since(lastRenewal(t, k)); age > primary.RenewInterval+1500*time.Millisecond {
			t.Fatalf("the lease was last renewed %s ago", age)
		}
	}
}

// checkFenced waits for the keeper to fence and checks the bound: no earlier than FenceAfter after
// the last renewal the API server has, and well before LeaseDuration, when the operator may
// name another primary.
func checkFenced(t *testing.T, k *primary.Keeper, done <-chan stopped) {
	t.Helper()
	var s stopped
	select {
	case s = <-done:
	case <-time.After(2 * primary.LeaseDuration):
		t.Fatalf("the keeper did not stop within %s", 2*primary.LeaseDuration)
	}
	var stop *primary.Stop
	if !errors.As(s.err, &stop) || !stop.Fence {
		t.Fatalf("the keeper returned %v, want a fence", s.err)
	}
	after := s.at.Sub(lastRenewal(t, k))
	if after < primary.FenceAfter || after > primary.LeaseDuration-time.Second {
		t.Errorf("fenced %s after the last renewal, want between %s and %s", after, primary.FenceAfter, primary.LeaseDuration-time.Second)
	}
	t.Logf("fenced %s after the last renewal: %s", after.Round(time.Millisecond), stop.Reason)
}

// A primary fences by the clock, FenceAfter after its last renewal and before the lease can
// expire, when its API server stops answering (and its calls ignore their deadline), and the same
// when its database stops answering the keeper: the renewals stop with the loop.
func TestAPrimaryFencesInTimeWhateverHangs(t *testing.T) {
	for name, hang := range map[string]func(*hangingClient, *member){
		"the API server": func(hc *hangingClient, _ *member) { hc.hang.Store(true) },
		"the database":   func(_ *hangingClient, m *member) { m.hang.Store(true) },
	} {
		t.Run(name, func(t *testing.T) {
			m := &member{}
			m.primary.Store(true)
			k, hc, done := keep(t, "db-0", "db-0", m)
			time.Sleep(3 * primary.RenewInterval)
			hang(hc, m)
			checkFenced(t, k, done)
		})
	}
}

// A promotion slower than FenceAfter does not let the lease lapse: the keeper renews while it
// runs, and the new primary is not fenced when it is done.
func TestASlowPromotionKeepsTheLease(t *testing.T) {
	m := &member{promoting: primary.FenceAfter + 2*time.Second}
	k, _, done := keep(t, "db-1", "db-1", m)
	renewsUntil(t, k, done, time.Now().Add(m.promoting+3*time.Second), 500*time.Millisecond)
	if !m.primary.Load() {
		t.Fatal("the member was not promoted")
	}
}

// handTo names holder in k's lease, as the operator's assignment does, again when the keeper's
// renewal changed the lease in between.
func handTo(t *testing.T, k *primary.Keeper, holder string) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := &coordinationv1.Lease{}
		if err := env.Client.Get(context.Background(), k.Key, l); err != nil {
			return err
		}
		l.Spec.HolderIdentity = ptr.To(holder)
		return env.Client.Update(context.Background(), l)
	}); err != nil {
		t.Fatal(err)
	}
}

// fencedByAnotherHolder runs a keeper for the primary db-0, names db-1 in its lease and waits for
// the keeper to fence; it returns the keeper, its member and how long the fence took.
func fencedByAnotherHolder(t *testing.T) (*primary.Keeper, *member, time.Duration) {
	t.Helper()
	m := &member{}
	m.primary.Store(true)
	k, _, done := keep(t, "db-0", "db-0", m)
	time.Sleep(primary.RenewInterval)
	handTo(t, k, "db-1")
	changed := time.Now()
	select {
	case s := <-done:
		var stop *primary.Stop
		if !errors.As(s.err, &stop) || !stop.Fence {
			t.Fatalf("the keeper returned %v, want a fence", s.err)
		}
		return k, m, s.at.Sub(changed)
	case <-time.After(primary.FenceAfter):
		t.Fatal("the keeper did not fence after the lease named another holder")
	}
	return nil, nil, 0
}

// A primary that sees the lease name another holder fences at once.
func TestAPrimaryThatLostTheLeaseFences(t *testing.T) {
	_, _, took := fencedByAnotherHolder(t)
	t.Logf("fenced %s after the lease named another holder", took.Round(time.Millisecond))
}

// The agent starts a fenced engine again in place and calls Keep again on the same keeper. The
// engine starts as a replica and may take a while to answer (a rewind, a slow start); meanwhile
// the watchdog must not fence it by the role the stopped engine had, although the last renewal is
// long past.
func TestAKeeperKeptAgainAfterAFenceDoesNotFenceByTheOldRole(t *testing.T) {
	k, m, _ := fencedByAnotherHolder(t)
	// Stopped; started again as a replica that does not answer yet, after longer than FenceAfter.
	m.primary.Store(false)
	m.hang.Store(true)
	time.Sleep(primary.FenceAfter + time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	again := make(chan error, 1)
	go func() { again <- k.Keep(ctx, m) }()
	select {
	case err := <-again:
		t.Fatalf("the keeper kept again stopped the engine that starts as a replica: %v", err)
	case <-time.After(2 * time.Second):
	}
}

// A primary's agent sends the API server its renewals and nothing else: the lease it renewed is
// what it renews next, read again only when the renewal conflicts (at a fleet of thousands of
// instances the reads were half of the agents' calls). Renewed all the same every RenewInterval.
func TestAPrimaryRenewsWithoutReadingTheLease(t *testing.T) {
	m := &member{}
	m.primary.Store(true)
	k, hc, done := keep(t, "db-0", "db-0", m)
	time.Sleep(primary.RenewInterval / 2)
	reads, writes := hc.reads.Load(), hc.writes.Load()
	renewsUntil(t, k, done, time.Now().Add(5*primary.RenewInterval), 250*time.Millisecond)
	reads, writes = hc.reads.Load()-reads, hc.writes.Load()-writes
	if reads != 0 || writes < 4 {
		t.Errorf("over %s the primary's agent read the lease %d times and renewed it %d times, want no read and a renewal every %s",
			5*primary.RenewInterval, reads, writes, primary.RenewInterval)
	}
}

// A primary asked to step down stops cleanly (no fence) once its next renewal finds the request:
// the operator's write makes that renewal conflict, and the keeper reads what changed.
func TestAPrimaryAskedToStepDownStops(t *testing.T) {
	m := &member{}
	m.primary.Store(true)
	k, _, done := keep(t, "db-0", "db-0", m)
	time.Sleep(primary.RenewInterval)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := &coordinationv1.Lease{}
		if err := env.Client.Get(context.Background(), k.Key, l); err != nil {
			return err
		}
		return primary.RequestStepDown(context.Background(), env.Client, l, "db-1")
	}); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	select {
	case s := <-done:
		var stop *primary.Stop
		if !errors.As(s.err, &stop) || stop.Fence {
			t.Fatalf("the keeper returned %v, want a clean stop", s.err)
		}
		t.Logf("stopped %s after the request: %s", s.at.Sub(asked).Round(time.Millisecond), stop.Reason)
	case <-time.After(primary.RenewInterval + 2*time.Second):
		t.Fatalf("the primary did not step down within %s of the request", primary.RenewInterval+2*time.Second)
	}
}
