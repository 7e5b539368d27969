package primary

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Failsafe: an outage of the API server (a restart, an etcd hiccup) cuts every agent off from its
// lease at once. Fencing every primary then would turn a control-plane outage into an outage of
// every database, although nobody could elect another primary meanwhile. So a primary that cannot
// renew asks the instance's other members directly, and goes on serving while every one of them
// confirms it; a member confirms only while it cannot read the lease itself (when it can, the
// holder's trouble is its own, and the holder fences as before), only the holder it last saw, and
// never once it is primary or elected.
//
// When the API server comes back, it answers its clients in no particular order, and a busy one
// (every client reconnecting and listing again at once) may answer the holder's renewal seconds
// after a replica's read. So a member that reads the lease again after it could not goes on
// confirming for regainGrace: else the holder, refused by replicas that are back while its own
// renewal is still in flight, would fence at the very end of the outage it was serving through.
// A replica that never stopped reading (the holder alone is cut off) refuses at once, as before.
//
// Every member, not a majority: the operator may elect any member the holder named as its
// confirmers (State.Electable), and a member it elects must be one that stopped vouching. A
// majority would let the old primary go on with the others while the elected one promotes. This
// is Patroni's DCS failsafe mode; CloudNativePG's failover quorum answers the other question (which
// replica may be promoted under synchronous replication), which Elect's quorum answers here.
//
// The bound stays a clock: a confirmation counts from when it was asked for, for FenceAfter; an
// elected member promotes no earlier than FenceAfter and fenceMargin after it last vouched (on
// its own clock, which measures a later moment than the asker's), so the old primary has fenced
// by then. What a process vouched for before it restarted is unknown: it waits as long from its
// start. A member that is not in the confirmers the holder last wrote is never elected while that
// holder may still serve (scale-up during an outage), and a single-member instance, which nobody
// can replace, keeps serving through any outage.

// ActionConfirm is the agent action a primary asks its peers for; ParamHolder names it.
const (
	ActionConfirm = "confirm-primary"
	ParamHolder   = "holder"
)

// Peers reaches the instance's other members without the API server.
type Peers interface {
	// Ask asks the member at ip (its pod IP) to confirm holder as the primary (Keeper.Confirm on
	// its side) and returns nil if it does. It returns by ctx's deadline.
	Ask(ctx context.Context, ip, holder string) error
}

// failsafe is a Keeper's state for the failsafe.
type failsafe struct {
	// peers are the confirmers named at the last renewal, by name, with their pod IPs.
	peers map[string]string
	// lastConfirmed is when the last round in which every peer confirmed this primary was asked.
	lastConfirmed time.Time
	// lastRead is when the last successful read of the lease started.
	lastRead time.Time
	// regained is when this member read the lease again after a gap in its reads (an outage of
	// the API server, see read); zero if it never had one.
	regained time.Time
	// lastVouched is when this member last confirmed another.
	lastVouched time.Time
	// confirming is whether the last round succeeded, to log changes only.
	confirming bool
}

// confirmers are the members this holder would ask: every member but itself. Nil when the
// operator has not listed the members (an operator without failsafe): then the holder has no
// failsafe, and names no confirmers, so that the operator may elect any member.
func (k *Keeper) confirmers(members map[string]string) map[string]string {
	if members == nil {
		return nil
	}
	peers := maps.Clone(members)
	delete(peers, k.Identity)
	return peers
}

// regainGrace is how long a member that reads the lease again after an outage goes on confirming
// the holder it saw: time for the holder's own renewal to get through.
const regainGrace = FenceAfter

func (k *Keeper) read(started time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !started.After(k.lastRead) {
		return
	}
	// A gap as long as a holder waits before it asks (askPeers): an outage the holder may have
	// served through, not one slow step.
	if !k.lastRead.IsZero() && started.Sub(k.lastRead) >= RenewInterval+k.tick() {
		k.regained = k.now() // when the read came back, not when it was sent: maybe into the outage
	}
	k.lastRead = started
}

// readsTheLease reports whether this member read the lease recently (callers hold mu).
func (k *Keeper) readsTheLease(now time.Time) bool {
	return now.Sub(k.lastRead) <= 2*k.tick()
}

// backFromAnOutage reports whether this member reads the lease again since less than
// regainGrace after a gap in its reads (callers hold mu).
func (k *Keeper) backFromAnOutage(now time.Time) bool {
	return !k.regained.IsZero() && now.Sub(k.regained) < regainGrace
}

// Confirm answers a holder that cannot renew the lease and asks whether it may go on serving.
// It says yes only while this member cannot read the lease either (or reads it again since less
// than regainGrace), last saw holder hold it, and is not primary nor being promoted; and it
// remembers when it said yes.
func (k *Keeper) Confirm(holder string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	switch {
	case holder == "" || holder == k.Identity:
		return fmt.Errorf("%q cannot confirm itself", holder)
	case k.wasPrimary || k.promoting:
		return fmt.Errorf("%s is primary", k.Identity)
	case k.seenHolder == nil || *k.seenHolder != holder:
		return fmt.Errorf("%s last saw the lease held by %q, not by %q", k.Identity, ptr.Deref(k.seenHolder, ""), holder)
	case k.readsTheLease(now) && !k.backFromAnOutage(now):
		return fmt.Errorf("%s reads the lease (last %s ago): the holder must renew it", k.Identity, now.Sub(k.lastRead).Round(time.Millisecond))
	}
	k.lastVouched = now
	return nil
}

// askPeers runs while the keeper runs: whenever this member is primary and a renewal is overdue,
// it asks every confirmer, and records the round when all of them said yes.
func (k *Keeper) askPeers(ctx context.Context) {
	logger := log.FromContext(ctx)
	t := time.NewTicker(k.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		asked := k.now()
		due := k.wasPrimary && k.peers != nil && asked.Sub(k.lastRenew) >= RenewInterval+k.tick()
		peers, was := k.peers, k.confirming
		if !due {
			k.confirming = false
		}
		k.mu.Unlock()
		if !due {
			continue
		}
		err := k.ask(ctx, peers)
		k.mu.Lock()
		k.confirming = err == nil
		if err == nil && asked.After(k.lastConfirmed) {
			k.lastConfirmed = asked
		}
		k.mu.Unlock()
		switch {
		case err == nil && !was:
			logger.Info("the lease cannot be renewed: serving on while every other member confirms this primary", "confirmers", slices.Sorted(maps.Keys(peers)))
		case err != nil && was:
			logger.Error(err, "the other members no longer all confirm this primary: it fences unless it renews the lease in time")
		}
	}
}

// ask asks every peer at once and returns nil only if all confirmed within CallTimeout.
func (k *Keeper) ask(ctx context.Context, peers map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	answers := make(chan error, len(peers))
	for name, ip := range peers {
		go func() {
			if ip == "" {
				answers <- fmt.Errorf("%s has no address", name)
				return
			}
			if err := k.Peers.Ask(ctx, ip, k.Identity); err != nil {
				answers <- fmt.Errorf("%s: %w", name, err)
				return
			}
			answers <- nil
		}()
	}
	var errs []error
	for range peers {
		select {
		case err := <-answers:
			errs = append(errs, err)
		case <-ctx.Done(): // an answer that ignores the deadline counts as a no
			return fmt.Errorf("not every member answered within %s: %w", CallTimeout, errors.Join(errs...))
		}
	}
	return errors.Join(errs...)
}

// vouchesLapsed reports whether an elected member may promote: FenceAfter and fenceMargin after it
// last confirmed another (and after its start, for what an earlier process did).
func (k *Keeper) vouchesLapsed(ctx context.Context) bool {
	wait := k.vouchesLapseIn()
	if wait > 0 {
		log.FromContext(ctx).Info("elected primary: promoting once what this member confirmed of the last holder has lapsed", "in", wait.Round(time.Millisecond))
	}
	return wait <= 0
}

// vouchesLapseIn is how long until what this member vouched for has lapsed; without Peers it
// vouches for nobody, and nothing is to lapse.
func (k *Keeper) vouchesLapseIn() time.Duration {
	if k.Peers == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	last := k.lastVouched
	if k.born.After(last) {
		last = k.born
	}
	return last.Add(FenceAfter + fenceMargin).Sub(k.now())
}

// waitForVouchesToLapse waits as vouchesLapsed says, for Claim.
func (k *Keeper) waitForVouchesToLapse(ctx context.Context) error {
	wait := k.vouchesLapseIn()
	if wait <= 0 {
		return nil
	}
	log.FromContext(ctx).Info("elected primary while not running: starting as primary once what an earlier process may have confirmed has lapsed", "in", wait.Round(time.Millisecond))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// newlyElected reports whether the operator named this lease's holder and the holder has not
// renewed it since (Assign sets both times to the same instant).
func newlyElected(l *coordinationv1.Lease) bool {
	return ptr.Deref(l.Spec.LeaseTransitions, 0) > 0 && l.Spec.AcquireTime != nil && l.Spec.RenewTime != nil &&
		l.Spec.AcquireTime.Equal(l.Spec.RenewTime)
}
