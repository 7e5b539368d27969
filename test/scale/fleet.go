package scale

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// fleet is one run of the harness: a control plane, the stand-in, the operator, and the
// instances created on them.
type fleet struct {
	cp        *controlPlane
	informers cache.Cache
	op        *operatorProcess
	standIn   *standIn
	// engines are the engines the instances are spread over, in turn.
	engines   []string
	instances []client.ObjectKey
	// auditAt is how far the audit log was read.
	auditAt int64
	// baseline is the operator's use with no instance.
	baseline     usage
	baselineHeap float64
}

// namespaces the instances are spread over, as tenants' would be.
const namespaces = 10

// startFleet starts everything but creates no instance.
func startFleet(tb testing.TB, engines []string, workers int) *fleet {
	tb.Helper()
	cp := startControlPlane(tb)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	informers, err := cache.New(cp.env.Config, cache.Options{Scheme: engine.NewScheme()})
	if err != nil {
		tb.Fatal(err)
	}
	stand := startStandIn(tb, ctx, informers, cp.env.Client)
	startLeaseAgents(tb, ctx, informers, cp.env.Config)
	provisionVolumes(tb, ctx, informers, cp.env.Client)
	for _, o := range []client.Object{&v1alpha1.ServiceInstance{}, &coordinationv1.Lease{}, &corev1.Pod{}, &corev1.Secret{}} {
		if _, err := informers.GetInformer(ctx, o); err != nil {
			tb.Fatal(err)
		}
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		tb.Fatal("the harness's cache did not sync")
	}
	testenv.CreateChartCatalogs(tb, cp.env.Client)
	for i := range namespaces {
		if err := cp.env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("tenant-%d", i)}}); err != nil {
			tb.Fatal(err)
		}
	}
	f := &fleet{cp: cp, informers: informers, engines: engines, standIn: stand}
	f.op = startOperator(tb, cp, buildManager(tb, cp.dir), workers)
	return f
}

// measureBaseline records the operator's use with no instance, its caches synced and its first
// collections done, and starts counting its writes from there.
func (f *fleet) measureBaseline(tb testing.TB) {
	tb.Helper()
	time.Sleep(10 * time.Second)
	f.baseline = f.usage(tb)
	f.baselineHeap = f.heap(tb)
	_, f.auditAt = f.writes(tb)
}

// create creates n more instances of replicas members, the engines in turn.
func (f *fleet) create(tb testing.TB, n int, replicas int32) {
	tb.Helper()
	ctx := context.Background()
	start := len(f.instances)
	for i := start; i < start+n; i++ {
		e := f.engines[i%len(f.engines)]
		si := &v1alpha1.ServiceInstance{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("tenant-%d", i%namespaces), Name: fmt.Sprintf("%s-%05d", e, i)},
			Spec:       v1alpha1.ServiceInstanceSpec{Engine: e, Replicas: &replicas},
		}
		if e == "mongodb" {
			si.Spec.Version = "ferretdb-1.24" // the catalog's version the project's own image serves
		}
		if err := f.cp.env.Client.Create(ctx, si); err != nil {
			tb.Fatal(err)
		}
		f.instances = append(f.instances, client.ObjectKeyFromObject(si))
	}
}

// notReady lists the instances not Ready at their current generation (at most 5, and how many).
func (f *fleet) notReady(tb testing.TB) (int, []string) {
	tb.Helper()
	list := &v1alpha1.ServiceInstanceList{}
	if err := f.informers.List(context.Background(), list); err != nil {
		tb.Fatal(err)
	}
	n, some := 0, []string(nil)
	for _, si := range list.Items {
		if si.Status.Phase == v1alpha1.PhaseReady && si.Status.ObservedGeneration == si.Generation {
			continue
		}
		n++
		if len(some) < 5 {
			some = append(some, fmt.Sprintf("%s/%s: %s %s", si.Namespace, si.Name, si.Status.Phase, conditionMessage(&si)))
		}
	}
	return n, some
}

func conditionMessage(si *v1alpha1.ServiceInstance) string {
	for _, c := range si.Status.Conditions {
		if c.Type == "Ready" {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// waitReady waits until every instance is Ready and returns how long that took.
func (f *fleet) waitReady(tb testing.TB, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	var last []string
	for time.Since(start) < timeout {
		n, some := f.notReady(tb)
		if n == 0 {
			return time.Since(start)
		}
		last = some
		time.Sleep(250 * time.Millisecond)
	}
	n, _ := f.notReady(tb)
	tb.Fatalf("%d of %d instances not Ready after %s, for example:\n%s\nthe last events:\n%s", n, len(f.instances), timeout, strings.Join(last, "\n"), f.lastEvents(tb, 10))
	return 0
}

// lastEvents are the n latest Warning events, one per line.
func (f *fleet) lastEvents(tb testing.TB, n int) string {
	tb.Helper()
	events := &corev1.EventList{}
	if err := f.cp.env.Client.List(context.Background(), events, client.MatchingFields{"type": corev1.EventTypeWarning}); err != nil {
		return err.Error()
	}
	sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp) })
	var lines []string
	for _, e := range events.Items[max(0, len(events.Items)-n):] {
		lines = append(lines, fmt.Sprintf("%s %s/%s %s: %s", e.Source.Component, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message))
	}
	return strings.Join(lines, "\n")
}

// writes counts the operator's writes since the last call.
func (f *fleet) writes(tb testing.TB) (writes, int64) {
	tb.Helper()
	w, at, err := auditWrites(f.cp.auditLog, f.auditAt, userOperator)
	if err != nil {
		tb.Fatal(err)
	}
	f.auditAt = at
	return w, at
}

func (f *fleet) usage(tb testing.TB) usage {
	tb.Helper()
	u, err := f.op.usage()
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func (f *fleet) heap(tb testing.TB) float64 {
	tb.Helper()
	h, err := f.op.metric("go_memstats_heap_inuse_bytes")
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// queueing is what the operator's work queues report (controller-runtime's workqueue metrics),
// summed since the operator started: per queue, the seconds items waited and were worked on,
// and how many.
type queueing map[string]struct{ waited, worked, items float64 }

func (f *fleet) queueing(tb testing.TB) queueing {
	tb.Helper()
	q := queueing{}
	for _, m := range []string{"workqueue_queue_duration_seconds_sum", "workqueue_queue_duration_seconds_count", "workqueue_work_duration_seconds_sum"} {
		s, err := f.op.series(m)
		if err != nil {
			tb.Fatal(err)
		}
		for labels, v := range s {
			e := q[labels]
			switch m {
			case "workqueue_queue_duration_seconds_sum":
				e.waited = v
			case "workqueue_queue_duration_seconds_count":
				e.items = v
			default:
				e.worked = v
			}
			q[labels] = e
		}
	}
	return q
}

// since says, per queue that took items between before and q, how many and how long each waited
// and was worked on, on average.
func (q queueing) since(before queueing) string {
	var out []string
	for _, labels := range slices.Sorted(maps.Keys(q)) {
		a, b := q[labels], before[labels]
		if n := a.items - b.items; n > 0 {
			out = append(out, fmt.Sprintf("%s %.0f items, waited %.0f ms, worked %.0f ms", labels, n,
				(a.waited-b.waited)/n*1000, (a.worked-b.worked)/n*1000))
		}
	}
	return strings.Join(out, "; ")
}

// react edits samples instances one after another (spec.deletionProtection, which restarts
// nothing) and returns how long each took to be Ready at its new generation.
func (f *fleet) react(tb testing.TB, samples int) []time.Duration {
	tb.Helper()
	ctx := context.Background()
	var out []time.Duration
	step := max(1, len(f.instances)/samples)
	for i := 0; i < len(f.instances) && len(out) < samples; i += step {
		si := &v1alpha1.ServiceInstance{}
		if err := f.cp.env.Client.Get(ctx, f.instances[i], si); err != nil {
			tb.Fatal(err)
		}
		patch := client.MergeFrom(si.DeepCopy())
		si.Spec.DeletionProtection = !si.Spec.DeletionProtection
		start := time.Now()
		if err := f.cp.env.Client.Patch(ctx, si, patch); err != nil {
			tb.Fatal(err)
		}
		for {
			got := &v1alpha1.ServiceInstance{}
			if err := f.informers.Get(ctx, f.instances[i], got); err != nil {
				tb.Fatal(err)
			}
			if got.Status.ObservedGeneration >= si.Generation && got.Status.Phase == v1alpha1.PhaseReady {
				out = append(out, time.Since(start))
				break
			}
			if time.Since(start) > 2*time.Minute {
				tb.Fatalf("%s did not reflect its edit in 2 minutes: %s", f.instances[i], conditionMessage(got))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(out)
	return out
}

// churn keeps slots instances of the fleet's engines in flight until ctx ends: each slot creates
// an instance, waits for it to be Ready, deletes it, waits for it to be gone, and again. The
// churning instances are not in f.instances.
func (f *fleet) churn(tb testing.TB, ctx context.Context, slots int, replicas int32) *sync.WaitGroup {
	tb.Helper()
	var wg sync.WaitGroup
	for slot := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ctx.Err() == nil; round++ {
				e := f.engines[slot%len(f.engines)]
				si := &v1alpha1.ServiceInstance{
					ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("tenant-%d", slot%namespaces), Name: fmt.Sprintf("churn-%s-%04d-%d", e, slot, round)},
					Spec:       v1alpha1.ServiceInstanceSpec{Engine: e, Replicas: &replicas},
				}
				if e == "mongodb" {
					si.Spec.Version = "ferretdb-1.24"
				}
				if err := f.cp.env.Client.Create(ctx, si); err != nil {
					continue
				}
				key := client.ObjectKeyFromObject(si)
				for ctx.Err() == nil {
					got := &v1alpha1.ServiceInstance{}
					if err := f.informers.Get(ctx, key, got); err == nil && got.Status.Phase == v1alpha1.PhaseReady {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				// Deleted even when the run ends, so that nothing of it is left behind.
				_ = f.cp.env.Client.Delete(context.Background(), si)
				for ctx.Err() == nil {
					if err := f.informers.Get(ctx, key, &v1alpha1.ServiceInstance{}); apierrors.IsNotFound(err) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// summary is one line of what the writes were, the most frequent first.
func (w writes) summary() string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range w.ByResource {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}
