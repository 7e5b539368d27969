package instance

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// An edit goes ahead of a backlog in controller-runtime's own priority queue, through the same
// handler chain the controller's watch uses; a status-only change does not; and the edited
// instance's next requeue (resetPriority) waits its turn behind the items already queued.
func TestAnEditGoesAheadOfTheQueuedWork(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test-edits-first")
	defer q.ShutDown()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "t", Name: name}}
	}
	for i := range 50 {
		q.Add(req(fmt.Sprintf("busy-%02d", i))) // the For watch's events, polls and echoes
	}
	inst := func(name string, generation int64, phase v1alpha1.InstancePhase) *v1alpha1.ServiceInstance {
		return &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name, Generation: generation, ResourceVersion: fmt.Sprint(generation) + string(phase)},
			Status: v1alpha1.ServiceInstanceStatus{Phase: phase}}
	}
	ctx := context.Background()
	editsFirst.Update(ctx, event.UpdateEvent{ObjectOld: inst("status-only", 1, v1alpha1.PhaseProvisioning), ObjectNew: inst("status-only", 1, v1alpha1.PhaseReady)}, q)
	editsFirst.Update(ctx, event.UpdateEvent{ObjectOld: inst("edited", 1, v1alpha1.PhaseReady), ObjectNew: inst("edited", 2, v1alpha1.PhaseReady)}, q)

	first, priority, _ := q.GetWithPriority()
	if first != req("edited") || priority != editPriority {
		t.Fatalf("the queue hands out %v (priority %d) first, want the edited instance (priority %d) ahead of 50 queued", first, priority, editPriority)
	}
	q.Done(first)
	// The controller puts a requeue back with the result's priority, else with the priority it
	// took the item with.
	var res reconcile.Result
	resetPriority(&res)
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(ptr.Deref(res.Priority, priority))}, first)
	var order []string
	for q.Len() > 0 {
		item, _, _ := q.GetWithPriority()
		order = append(order, item.Name)
		q.Done(item)
	}
	if len(order) != 51 || order[0] != "busy-00" || order[50] != "edited" {
		t.Fatalf("after the edit the queue hands out %v, want the 50 busy instances first, the edited one's requeue last (and no item for the status-only change)", order)
	}
}
