package instance

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/framework/names"
)

// A watched object that lapses wakes its instance at the time Expires gives, ahead of the queued
// polls, through controller-runtime's own priority queue and the handler the watch uses; a
// change of the object moves the wake, a deleted object and one that expires at no time wake
// nothing. No bound here is an upper one: a timer never fires early, however busy the machine.
func TestAnObjectWakesItsInstanceWhenItLapses(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test-expiry")
	defer q.ShutDown()
	// The objects stand for leases: the annotation says when each expires.
	lease := func(instance string, expires time.Time) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: instance + "-primary",
			Labels: map[string]string{names.InstanceLabel: instance}}}
		if !expires.IsZero() {
			cm.Annotations = map[string]string{"expires": expires.Format(time.RFC3339Nano)}
		}
		return cm
	}
	h := newExpiryWakes(func(o client.Object) time.Time {
		at, _ := time.Parse(time.RFC3339Nano, o.GetAnnotations()["expires"])
		return at
	}).handler()
	ctx := context.Background()
	start := time.Now()
	lapses := map[string]time.Time{"a": start.Add(time.Second), "b": start.Add(2 * time.Second)}
	for _, name := range []string{"a", "b", "c"} {
		h.Create(ctx, event.CreateEvent{Object: lease(name, start.Add(time.Second))}, q)
	}
	h.Create(ctx, event.CreateEvent{Object: lease("d", time.Time{})}, q)
	h.Update(ctx, event.UpdateEvent{ObjectOld: lease("b", start.Add(time.Second)), ObjectNew: lease("b", lapses["b"])}, q) // renewed
	h.Delete(ctx, event.DeleteEvent{Object: lease("c", start.Add(time.Second))}, q)
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "t", Name: name}}
	}
	for _, name := range []string{"busy-0", "busy-1", "busy-2"} {
		q.Add(req(name)) // the polls
	}

	time.Sleep(1500 * time.Millisecond)
	woken := map[string]time.Time{}
	var order []string
	for q.Len() > 0 {
		item, priority, _ := q.GetWithPriority()
		q.Done(item)
		order = append(order, item.Name)
		if _, ok := lapses[item.Name]; ok {
			woken[item.Name] = time.Now()
			if priority != editPriority {
				t.Errorf("%s was woken with priority %d, want %d (ahead of the polls)", item.Name, priority, editPriority)
			}
		}
	}
	if len(order) < 4 || order[0] != "a" {
		t.Fatalf("the queue handed out %v, want a's wake first, ahead of the three polls", order)
	}
	if _, ok := woken["b"]; !ok {
		got := make(chan string, 1)
		go func() {
			item, _ := q.Get()
			q.Done(item)
			got <- item.Name
		}()
		select {
		case name := <-got:
			woken[name] = time.Now()
		case <-time.After(10 * time.Second):
			t.Fatal("b, renewed to lapse 2 s after the start, was not woken 10 s after it")
		}
	}
	for name, at := range lapses {
		if w, ok := woken[name]; !ok || w.Before(at) {
			t.Errorf("%s lapses %s after the start and was woken %s after it (%v)", name, at.Sub(start), w.Sub(start), ok)
		}
	}
	time.Sleep(time.Second)
	if q.Len() != 0 {
		item, _ := q.Get()
		t.Errorf("%s was woken: a deleted lease and one that never expires wake nothing", item.Name)
	}
}
