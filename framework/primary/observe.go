package primary

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The operator compares the renew time a holder wrote, by the holder's clock, with its own: a
// holder whose clock is behind the operator's by more than LeaseDuration - FenceAfter would see
// its lease named to another pod before it has fenced. An Observer closes that, as client-go's
// leader election does: it remembers when this process first saw each renewal. The renewal was
// made before it was seen, so the holder has fenced FenceAfter (and a watchdog tick and an
// immediate shutdown) after that moment at the latest, whatever either clock says. A lease
// expires at the later of the two: its renew time plus its duration, and the first sight of that
// renewal plus FenceAfter and fenceMargin. An operator that has just started has seen nothing and
// waits that long from its first look.

// fenceMargin covers the watchdog's tick, an immediate shutdown, and scheduling.
const fenceMargin = 2 * time.Second

// forgetAfter is how long an observation no reconcile looked at is kept.
const forgetAfter = 10 * time.Minute

// Observer remembers when each lease's latest renewal was first seen. The zero value is not
// usable: NewObserver.
type Observer struct {
	mu        sync.Mutex
	seen      map[types.NamespacedName]observation
	lastSweep time.Time
}

type observation struct {
	holder   string
	renew    time.Time
	at, used time.Time
}

// NewObserver returns an Observer that has seen nothing.
func NewObserver() *Observer {
	return &Observer{seen: map[types.NamespacedName]observation{}}
}

// Observe returns the lease's state with its expiry moved to the first sight of its renewal plus
// FenceAfter and fenceMargin when that is later. A nil Observer changes nothing.
func (o *Observer) Observe(key types.NamespacedName, s State, now time.Time) State {
	if o == nil || s.Holder == "" {
		return s
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ob, ok := o.seen[key]
	if !ok || ob.holder != s.Holder || !ob.renew.Equal(s.RenewTime) {
		ob = observation{holder: s.Holder, renew: s.RenewTime, at: now}
	}
	ob.used = now
	o.seen[key] = ob
	o.sweep(now)
	if observed := ob.at.Add(FenceAfter + fenceMargin); observed.After(s.ExpiresAt()) {
		s.RenewTime, s.Duration = ob.at, FenceAfter+fenceMargin
	}
	return s
}

// Forget drops what was seen of the lease: its next Observe counts from then, as for an operator
// that has just started. For a lease the API server could not be asked about: the renewals it
// missed meanwhile were never seen. A nil Observer forgets nothing.
func (o *Observer) Forget(key types.NamespacedName) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen, key)
}

// sweep forgets, now and then, observations no reconcile has looked at for forgetAfter (the
// instance is gone, or its lease has no holder).
func (o *Observer) sweep(now time.Time) {
	if now.Sub(o.lastSweep) < forgetAfter {
		return
	}
	o.lastSweep = now
	for k, ob := range o.seen {
		if now.Sub(ob.used) > forgetAfter {
			delete(o.seen, k)
		}
	}
}
