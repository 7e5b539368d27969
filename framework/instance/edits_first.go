package instance

import (
	"context"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A tenant's edit goes ahead of the polls and echoes in an engine's work queue. Measured with the
// scale harness (docs/scale.md): while a tenth of a thousand instances churned, an item waited in
// the queue 3.5 to 17 seconds on average, behind the settled instances' periodic reconciles and
// the churning instances' own, and an edit waited with them. controller-runtime's priority queue
// (on by default) takes a priority per item; an update that changes an instance's generation (a
// spec edit, or its deletion) is added with editPriority, and every reconcile's requeue goes back
// to the normal priority (resetPriority), so an instance edited once does not keep the edit's
// priority for its polls. Failover does not wait long behind edits: they are few, one item each.

// editPriority is the priority of an instance whose generation changed; the queue's default is 0
// and the initial list's handler.LowPriority.
const editPriority = 10

// editsFirst adds an instance whose generation changed with editPriority (the For watch adds it
// too, with the default priority; the queue keeps the higher). Creations are left to For: at the
// operator's start every instance is created in the cache, and those keep their low priority.
var editsFirst = handler.Funcs{
	UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if e.ObjectOld == nil || e.ObjectNew == nil || e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() {
			return
		}
		addFirst(q, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.ObjectNew)})
	},
}

// addFirst adds the request with editPriority, ahead of the polls and echoes (a queue without
// priorities just adds it).
func addFirst(q workqueue.TypedRateLimitingInterface[reconcile.Request], req reconcile.Request) {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(editPriority)}, req)
		return
	}
	q.Add(req)
}

// resetPriority gives a reconcile's requeue the normal priority, whatever the priority it was
// taken from the queue with.
func resetPriority(res *reconcile.Result) {
	if res.Priority == nil {
		res.Priority = ptr.To(0)
	}
}
