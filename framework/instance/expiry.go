package instance

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// An object that lapses sends no event: a PostgreSQL primary lease whose holder stopped renewing
// just stops changing. Engines used to poll each settled instance at its lease's expiry, about
// every 10 s, to notice that; at a thousand instances those polls were most of the engine's queue
// while a tenth of the fleet churned (docs/scale.md). A Watch with Expires instead arms one timer
// per watched object at the time it gives, moved by every change of the object (each renewal),
// and only a timer that fires wakes the instance: a live lease costs a timer reset per renewal
// and no reconcile.

// expiryWakes holds the armed timers of one watched kind, by object.
type expiryWakes struct {
	expires func(client.Object) time.Time
	mu      sync.Mutex
	armed   map[types.NamespacedName]*armed
}

// armed is one object's timer.
type armed struct{ timer *time.Timer }

func newExpiryWakes(expires func(client.Object) time.Time) *expiryWakes {
	return &expiryWakes{expires: expires, armed: map[types.NamespacedName]*armed{}}
}

// handler arms, moves and disarms the timers as the objects change; it enqueues nothing itself.
func (w *expiryWakes) handler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			w.arm(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			w.arm(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			w.forget(client.ObjectKeyFromObject(e.Object), nil)
		},
	}
}

// arm sets the object's timer to its expiry, replacing the one it had.
func (w *expiryWakes) arm(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	key := client.ObjectKeyFromObject(o)
	reqs := instanceOfLabels(context.Background(), o)
	at := w.expires(o)
	if len(reqs) == 0 || at.IsZero() {
		w.forget(key, nil)
		return
	}
	a := &armed{}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.armed[key]; old != nil {
		old.timer.Stop()
	}
	a.timer = time.AfterFunc(time.Until(at), func() {
		// A timer that fired as the object changed was replaced: the change moved the expiry.
		// A lapsed lease is a failover to make: ahead of the polls, as an edit (edits_first.go).
		if w.forget(key, a) {
			addFirst(q, reqs[0])
		}
	})
	w.armed[key] = a
}

// forget stops and forgets the object's timer, only if it is still a when a is given, and
// reports whether it did.
func (w *expiryWakes) forget(key types.NamespacedName, a *armed) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.armed[key]
	if cur == nil || (a != nil && cur != a) {
		return false
	}
	cur.timer.Stop()
	delete(w.armed, key)
	return true
}
