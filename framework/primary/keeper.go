package primary

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Member is the engine side of an agent whose engine can be primary.
type Member interface {
	// IsPrimary reports whether the engine runs as a writable primary now.
	IsPrimary(ctx context.Context) (bool, error)
	// Promote turns a replica into the primary and returns once it accepts writes.
	Promote(ctx context.Context) error
	// Follow keeps a replica following the current primary: called on every tick of a replica,
	// with changed set when the lease names another holder than before (then it reconnects at
	// once); otherwise it reconnects only a replication connection that has not streamed for a
	// while (one that hangs on a frozen former primary). It returns a *Stop when the replica
	// cannot follow without a restart (its data must be rewound first).
	Follow(ctx context.Context, changed bool) error
}

// Keeper is one agent's side of the protocol: it renews the lease while its member is primary,
// promotes its member when the operator names it, and says when the member must stop.
//
// Every call it makes (to the API server, to its member) has a deadline of CallTimeout, and the
// fence does not depend on any call returning: a watchdog compares the clock with the last
// successful renewal and fences a primary FenceAfter after it, whatever is still in flight (a
// black-holed connection, a DNS lookup, a member that does not answer). A promotion runs beside
// the renewals, so a slow one does not let the lease lapse.
//
// With Peers, a primary that cannot renew goes on serving while every other member confirms it
// directly (failsafe.go): an outage of the API server alone is not an outage of the databases.
type Keeper struct {
	Client   client.Client
	Key      types.NamespacedName
	Identity string
	// Tick is how often the lease is read; one second if zero.
	Tick time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Peers reaches the other members without the API server; nil: no failsafe, a primary that
	// cannot renew fences FenceAfter after its last renewal.
	Peers Peers

	mu         sync.Mutex
	born       time.Time // when this keeper was first used: what an earlier process vouched for is unknown
	lastRenew  time.Time
	wasPrimary bool
	stops      int // Keep's stops so far: the steps of a Keep that stopped no longer record a role
	promoting  bool
	seenHolder *string
	// held is the lease as this member's last renewal left it (the API server's answer), while
	// its member is primary: the next renewal is made from it, without reading the lease first.
	held *coordinationv1.Lease
	failsafe
}

// CallTimeout bounds each call of the keeper: a renewal that takes longer has failed.
const CallTimeout = RenewInterval

// watchdogTick is how often the watchdog looks at the clock: the fence comes at most this late.
const watchdogTick = 100 * time.Millisecond

// promoteTimeout bounds a promotion (pg_promote waits up to 60 s itself).
const promoteTimeout = 90 * time.Second

// Stop is returned by Keep when the member's engine must stop. Immediate stops drop connections at
// once (fencing); the others are a clean shutdown (step down), after which Release hands the lease
// back.
type Stop struct {
	Fence  bool
	Reason string
}

func (s *Stop) Error() string { return s.Reason }

// Immediate tells the agent to stop the engine at once rather than cleanly.
func (s *Stop) Immediate() bool { return s.Fence }

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keeper) tick() time.Duration {
	if k.Tick == 0 {
		return time.Second
	}
	return k.Tick
}

// start records when the keeper was first used.
func (k *Keeper) start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.born.IsZero() {
		k.born = k.now()
	}
}

// Get reads the lease.
func (k *Keeper) Get(ctx context.Context) (*coordinationv1.Lease, State, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	l := &coordinationv1.Lease{}
	started := k.now()
	if err := k.Client.Get(ctx, k.Key, l); err != nil {
		return nil, State{}, err
	}
	k.read(started)
	return l, Read(l), nil
}

// Renew records that the holder is alive. It fails unless this agent holds the lease, and the
// update carries the lease's resourceVersion, so it never overwrites another holder. With Peers,
// the same update names the members this holder will ask to confirm it (ConfirmersAnnotation).
func (k *Keeper) Renew(ctx context.Context, l *coordinationv1.Lease, at time.Time) error {
	if ptr.Deref(l.Spec.HolderIdentity, "") != k.Identity {
		return fmt.Errorf("%s does not hold the lease", k.Identity)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	l = l.DeepCopy()
	l.Spec.RenewTime = &metav1.MicroTime{Time: at}
	peers := k.confirmers(Read(l).Members)
	switch {
	case k.Peers != nil && peers != nil:
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[ConfirmersAnnotation] = strings.Join(slices.Sorted(maps.Keys(peers)), ",")
	default: // no failsafe: the operator may elect any member
		delete(l.Annotations, ConfirmersAnnotation)
	}
	sent := k.now()
	if err := k.Client.Update(ctx, l); err != nil {
		return err
	}
	// An accepted renewal is also a read: the lease was as this member last saw it.
	k.read(sent)
	k.renewed(at, peers, l)
	return nil
}

// renewed records a successful renewal made at at, naming peers as the confirmers, and the lease
// as it left it.
func (k *Keeper) renewed(at time.Time, peers map[string]string, l *coordinationv1.Lease) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if at.After(k.lastRenew) {
		k.lastRenew = at
		k.peers = peers
		k.held = l
	}
}

// Claim is called before the engine starts: it reports whether this agent holds the lease, and
// renews it if so, so that the engine starts as primary only with a lease that is current and its
// own (an expired lease the operator is reassigning cannot be renewed: the update would conflict).
func (k *Keeper) Claim(ctx context.Context) (holder string, err error) {
	k.start()
	l, s, err := k.Get(ctx)
	if err != nil {
		return "", err
	}
	if s.Holder != k.Identity {
		return s.Holder, nil
	}
	if newlyElected(l) {
		// Elected while this process did not run: an earlier one may have vouched for the last
		// holder moments ago.
		if err := k.waitForVouchesToLapse(ctx); err != nil {
			return "", err
		}
		if l, s, err = k.Get(ctx); err != nil {
			return "", err
		} else if s.Holder != k.Identity {
			return s.Holder, nil
		}
	}
	if err := k.Renew(ctx, l, k.now()); err != nil {
		return "", fmt.Errorf("renewing the primary lease before starting as primary: %w", err)
	}
	return s.Holder, nil
}

// MarkBootstrapped records on the lease that the instance's data exists.
func (k *Keeper) MarkBootstrapped(ctx context.Context) error {
	l, s, err := k.Get(ctx)
	if err != nil || s.Bootstrapped {
		return err
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[BootstrappedAnnotation] = "true"
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return k.Client.Update(ctx, l)
}

// Release gives the lease up (after the member's engine has stopped), so that the operator can
// elect a successor without waiting for the lease to expire. Not holding it is not an error.
func (k *Keeper) Release(ctx context.Context) error {
	l, s, err := k.Get(ctx)
	if err != nil || s.Holder != k.Identity {
		return client.IgnoreNotFound(err)
	}
	l.Spec.HolderIdentity = nil
	l.Spec.RenewTime = nil
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return k.Client.Update(ctx, l)
}

// Keep runs until ctx ends or the member must stop (a *Stop error):
//   - holder and primary: renew; stop cleanly when asked to step down;
//   - holder and replica: the operator elected this member: renew (which proves the election is
//     current), then promote, renewing on while the promotion runs;
//   - not the holder but primary: another member was elected: stop at once;
//   - not the holder, replica: when the holder changes, reconnect to the new primary;
//   - and whatever the loop is doing: a primary whose last renewal is FenceAfter old stops at once.
func (k *Keeper) Keep(ctx context.Context, m Member) error {
	k.start()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends a step still in flight, and a promotion
	logger := log.FromContext(ctx).WithValues("lease", k.Key.String(), "identity", k.Identity)
	stops := make(chan *Stop, 1)
	k.mu.Lock()
	run := k.stops
	k.mu.Unlock()
	go k.loop(ctx, m, stops, run)
	if k.Peers != nil {
		go k.askPeers(ctx)
	}
	wd := time.NewTicker(watchdogTick)
	defer wd.Stop()
	for {
		var stop *Stop
		select {
		case <-ctx.Done():
			return ctx.Err()
		case stop = <-stops:
		case <-wd.C:
			stop = k.watchdog()
		}
		if stop != nil {
			logger.Info("stopping the engine", "reason", stop.Reason, "fence", stop.Fence)
			// The engine is stopped now. The agent starts it again in place and calls Keep
			// again: the watchdog must not fence what starts as a replica by the role this one
			// had (the next step reads the role afresh).
			k.mu.Lock()
			k.wasPrimary = false
			k.held = nil
			k.stops++
			k.mu.Unlock()
			return stop
		}
	}
}

// loop runs a step every tick until one says stop.
func (k *Keeper) loop(ctx context.Context, m Member, stops chan<- *Stop, run int) {
	t := time.NewTicker(k.tick())
	defer t.Stop()
	for {
		if stop := k.step(ctx, m, run); stop != nil {
			stops <- stop
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchdog fences a primary whose last renewal, and last confirmation by every other member,
// are more than FenceAfter old, by the clock alone.
func (k *Keeper) watchdog() *Stop {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if since := now.Sub(k.lastRenew); k.wasPrimary && since > FenceAfter && now.Sub(k.lastConfirmed) > FenceAfter {
		confirmed := "never confirmed it"
		if !k.lastConfirmed.IsZero() {
			confirmed = "last confirmed it " + now.Sub(k.lastConfirmed).Round(time.Millisecond).String() + " ago"
		}
		return &Stop{Fence: true, Reason: fmt.Sprintf("the primary lease was last renewed %s ago and the other members %s (at most %s)",
			since.Round(time.Millisecond), confirmed, FenceAfter)}
	}
	return nil
}

func (k *Keeper) step(ctx context.Context, m Member, run int) *Stop {
	logger := log.FromContext(ctx)
	roleCtx, cancel := context.WithTimeout(ctx, CallTimeout)
	primary, roleErr := m.IsPrimary(roleCtx)
	cancel()
	k.mu.Lock()
	switch {
	case k.stops != run: // this Keep stopped while the step asked (it ends with ctx)
	case roleErr == nil:
		k.wasPrimary = primary
	default:
		// Unknown role: assume what was last seen, which errs towards fencing a primary.
		primary = k.wasPrimary
	}
	lastRenew, promoting, held := k.lastRenew, k.promoting, k.held
	if !primary || roleErr != nil {
		k.held = nil
	}
	k.mu.Unlock()
	started := k.now()
	if primary && roleErr == nil && held != nil {
		if done := k.renewHeld(ctx, held, started, lastRenew); done {
			return nil
		}
	}
	l, s, err := k.Get(ctx)
	if err != nil {
		logger.Error(err, "reading the primary lease")
		return nil // the watchdog fences when this lasts
	}
	if s.Holder != k.Identity {
		if primary {
			return &Stop{Fence: true, Reason: fmt.Sprintf("the primary lease is held by %q, not by this member", s.Holder)}
		}
		k.mu.Lock()
		changed := k.seenHolder != nil && *k.seenHolder != s.Holder && s.Holder != ""
		k.seenHolder = ptr.To(s.Holder)
		k.mu.Unlock()
		if !primary && roleErr == nil && s.Holder != "" {
			followCtx, cancel := context.WithTimeout(ctx, CallTimeout)
			err := m.Follow(followCtx, changed)
			cancel()
			var stop *Stop
			if errors.As(err, &stop) {
				return stop
			}
			if err != nil {
				logger.Error(err, "following the primary")
			}
		}
		return nil
	}
	k.mu.Lock()
	k.seenHolder = ptr.To(s.Holder)
	k.mu.Unlock()
	if primary && s.StepDown {
		return &Stop{Reason: fmt.Sprintf("asked to step down in favour of %q", s.StepDownTo)}
	}
	if !primary || started.Sub(lastRenew) >= RenewInterval {
		if err := k.Renew(ctx, l, started); err != nil {
			logger.Error(err, "renewing the primary lease")
			return nil // the watchdog fences when this lasts
		}
	}
	if !primary && roleErr == nil && !promoting && k.vouchesLapsed(ctx) {
		k.promote(ctx, m)
	}
	return nil
}

// renewHeld is a primary's step between reads: nothing until a renewal is due, then a renewal
// made from the lease its last one left. Nobody else writes a held lease but the operator (a
// step-down request, the members' addresses) and its write makes that renewal conflict: then
// done is false, and the step reads the lease and acts on what it says, as every step did
// before. A primary so sends the API server a renewal every RenewInterval and no reads: an
// instance's holder is half of its agents' calls at fleet scale (docs/scale.md).
func (k *Keeper) renewHeld(ctx context.Context, held *coordinationv1.Lease, started, lastRenew time.Time) (done bool) {
	if started.Sub(lastRenew) < RenewInterval {
		return true
	}
	err := k.Renew(ctx, held, started)
	if err == nil {
		return true
	}
	k.mu.Lock()
	if k.held == held {
		k.held = nil
	}
	k.mu.Unlock()
	if apierrors.IsConflict(err) {
		return false
	}
	log.FromContext(ctx).Error(err, "renewing the primary lease")
	return true // the watchdog fences when this lasts; the next step reads the lease
}

// promote promotes the member beside the loop, which goes on renewing the lease meanwhile.
func (k *Keeper) promote(ctx context.Context, m Member) {
	k.mu.Lock()
	k.promoting = true
	k.mu.Unlock()
	logger := log.FromContext(ctx)
	logger.Info("elected primary: promoting")
	go func() {
		ctx, cancel := context.WithTimeout(ctx, promoteTimeout)
		defer cancel()
		err := m.Promote(ctx)
		k.mu.Lock()
		defer k.mu.Unlock()
		k.promoting = false
		if err != nil {
			logger.Error(err, "promoting")
			return
		}
		k.wasPrimary = true
	}()
}
