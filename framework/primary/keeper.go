package primary

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
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
	// Follow makes a replica reconnect to the current primary at once, after the primary changed.
	Follow(ctx context.Context) error
}

// Keeper is one agent's side of the protocol: it renews the lease while its member is primary,
// promotes its member when the operator names it, and says when the member must stop.
type Keeper struct {
	Client   client.Client
	Key      types.NamespacedName
	Identity string
	// Tick is how often the lease is read; one second if zero.
	Tick time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	lastRenew  time.Time
	wasPrimary bool
	seenHolder *string
}

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

// Get reads the lease.
func (k *Keeper) Get(ctx context.Context) (*coordinationv1.Lease, State, error) {
	l := &coordinationv1.Lease{}
	if err := k.Client.Get(ctx, k.Key, l); err != nil {
		return nil, State{}, err
	}
	return l, Read(l), nil
}

// Renew records that the holder is alive. It fails unless this agent holds the lease, and the
// update carries the lease's resourceVersion, so it never overwrites another holder.
func (k *Keeper) Renew(ctx context.Context, l *coordinationv1.Lease, at time.Time) error {
	if ptr.Deref(l.Spec.HolderIdentity, "") != k.Identity {
		return fmt.Errorf("%s does not hold the lease", k.Identity)
	}
	l = l.DeepCopy()
	l.Spec.RenewTime = &metav1.MicroTime{Time: at}
	return k.Client.Update(ctx, l)
}

// Claim is called before the engine starts: it reports whether this agent holds the lease, and
// renews it if so, so that the engine starts as primary only with a lease that is current and its
// own (an expired lease the operator is reassigning cannot be renewed: the update would conflict).
func (k *Keeper) Claim(ctx context.Context) (holder string, err error) {
	l, s, err := k.Get(ctx)
	if err != nil {
		return "", err
	}
	if s.Holder != k.Identity {
		return s.Holder, nil
	}
	at := k.now()
	if err := k.Renew(ctx, l, at); err != nil {
		return "", fmt.Errorf("renewing the primary lease before starting as primary: %w", err)
	}
	k.lastRenew = at
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
	return k.Client.Update(ctx, l)
}

// Keep runs until ctx ends or the member must stop (a *Stop error):
//   - holder and primary: renew; stop at once when renewing has failed for FenceAfter; stop
//     cleanly when asked to step down;
//   - holder and replica: the operator elected this member: renew (which proves the election is
//     current), then promote;
//   - not the holder but primary: another member was elected: stop at once;
//   - not the holder, replica: when the holder changes, reconnect to the new primary.
func (k *Keeper) Keep(ctx context.Context, m Member) error {
	tick := k.Tick
	if tick == 0 {
		tick = time.Second
	}
	logger := log.FromContext(ctx).WithValues("lease", k.Key.String(), "identity", k.Identity)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if stop := k.step(ctx, m); stop != nil {
			logger.Info("stopping the engine", "reason", stop.Reason, "fence", stop.Fence)
			return stop
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (k *Keeper) step(ctx context.Context, m Member) *Stop {
	logger := log.FromContext(ctx)
	primary, roleErr := m.IsPrimary(ctx)
	if roleErr == nil {
		k.wasPrimary = primary
	} else {
		// Unknown role: assume what was last seen, which errs towards fencing a primary.
		primary = k.wasPrimary
	}
	started := k.now()
	l, s, err := k.Get(ctx)
	if err != nil {
		return k.renewFailed(ctx, primary, started, err, "reading the primary lease")
	}
	if s.Holder != k.Identity {
		if primary {
			return &Stop{Fence: true, Reason: fmt.Sprintf("the primary lease is held by %q, not by this member", s.Holder)}
		}
		if k.seenHolder != nil && *k.seenHolder != s.Holder && s.Holder != "" {
			if err := m.Follow(ctx); err != nil {
				logger.Error(err, "reconnecting to the new primary")
			}
		}
		k.seenHolder = ptr.To(s.Holder)
		return nil
	}
	k.seenHolder = ptr.To(s.Holder)
	if primary && s.StepDown {
		return &Stop{Reason: fmt.Sprintf("asked to step down in favour of %q", s.StepDownTo)}
	}
	if !primary || started.Sub(k.lastRenew) >= RenewInterval {
		if err := k.Renew(ctx, l, started); err != nil {
			return k.renewFailed(ctx, primary, started, err, "renewing the primary lease")
		}
		k.lastRenew = started
	}
	if !primary && roleErr == nil {
		logger.Info("elected primary: promoting")
		if err := m.Promote(ctx); err != nil {
			logger.Error(err, "promoting")
			return nil
		}
		k.wasPrimary = true
	}
	return nil
}

// renewFailed fences a primary whose last successful renewal is more than FenceAfter old, and
// otherwise only logs: the next tick tries again.
func (k *Keeper) renewFailed(ctx context.Context, primary bool, now time.Time, err error, what string) *Stop {
	if primary && now.Sub(k.lastRenew) > FenceAfter {
		return &Stop{Fence: true, Reason: fmt.Sprintf("could not renew the primary lease for %s: %v", FenceAfter, err)}
	}
	log.FromContext(ctx).Error(err, what)
	return nil
}
