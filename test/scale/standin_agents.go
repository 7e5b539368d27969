package scale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// leaseAgents runs, for every PostgreSQL pod, what its agent does with the instance's primary
// Lease: the product's own primary.Keeper (Claim, MarkBootstrapped as the first holder, Keep), so
// the API server sees what a real fleet's agents send it: every replica reads its lease every
// keeper tick and the holder renews it every primary.RenewInterval. Only the engine is a
// stand-in (standInMember): no PostgreSQL runs in a kwok pod. The agents have the failsafe, as
// real ones do: a primary that cannot renew asks the instance's other members, reached here in
// the harness's process by their pod address instead of over the network (a single-pod
// instance's primary has nobody to ask, and serves on).
//
// Each agent gets the client a real agent has: its own, uncached, with no limit shared with the
// others (a real agent's limiter is its own, and one agent sends a call or two a second). Its
// calls are the harness's in the audit log, not the operator's.
type leaseAgents struct {
	c client.Client

	mu      sync.Mutex
	running map[types.UID]runningAgent
	// byIP are the running agents' keepers by their pod's address, for the failsafe's questions.
	byIP map[string]*primary.Keeper
}

// runningAgent is one pod's agent: how to stop it, and its keeper and where it answers.
type runningAgent struct {
	stop   context.CancelFunc
	keeper *primary.Keeper
	ip     string
}

// startLeaseAgents starts an agent for every PostgreSQL pod with an address, and stops it when
// the pod goes, until ctx ends.
func startLeaseAgents(tb testing.TB, ctx context.Context, informers cache.Cache, cfg *rest.Config) {
	tb.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = -1 // no client-side limit: the agents of a fleet do not share one
	c, err := primary.LeaseClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	a := &leaseAgents{c: c, running: map[types.UID]runningAgent{}, byIP: map[string]*primary.Keeper{}}
	pods, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		tb.Fatal(err)
	}
	seen := func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			a.seen(ctx, p)
		}
	}
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, o any) { seen(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				a.gone(p.UID)
			}
		},
	}); err != nil {
		tb.Fatal(err)
	}
}

// seen starts the agent of a PostgreSQL pod that has an address, once per pod (by UID: a pod
// recreated under the same name gets a new agent, as it would a new process).
func (a *leaseAgents) seen(ctx context.Context, p *corev1.Pod) {
	instance := p.Labels[names.InstanceLabel]
	if p.Labels[names.EngineLabel] != postgres.Name || instance == "" || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.running[p.UID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	lease := postgres.LeaseName(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: instance}})
	k := &primary.Keeper{Client: a.c, Key: types.NamespacedName{Namespace: p.Namespace, Name: lease}, Identity: p.Name, Peers: a}
	a.running[p.UID] = runningAgent{stop: cancel, keeper: k, ip: p.Status.PodIP}
	a.byIP[p.Status.PodIP] = k
	go a.run(ctx, k)
}

func (a *leaseAgents) gone(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.running[uid]; ok {
		r.stop()
		delete(a.running, uid)
		if a.byIP[r.ip] == r.keeper { // else a pod that took over the address answers there
			delete(a.byIP, r.ip)
		}
	}
}

// Ask is primary.Peers: the agent at ip confirms holder (Keeper.Confirm), or refuses.
func (a *leaseAgents) Ask(_ context.Context, ip, holder string) error {
	a.mu.Lock()
	k := a.byIP[ip]
	a.mu.Unlock()
	if k == nil {
		return fmt.Errorf("no agent answers at %s", ip)
	}
	return k.Confirm(holder)
}

// run is the agent's life, as engines/postgres/agent runs it: claim the lease (start as primary
// if it names this member), mark the instance bootstrapped as its first primary, keep the lease;
// after a stop (fenced, stepped down) the engine starts again and the agent claims again.
func (a *leaseAgents) run(ctx context.Context, k *primary.Keeper) {
	m := &standInMember{}
	for ctx.Err() == nil {
		holder, err := k.Claim(ctx)
		if err != nil { // no lease yet, or the API server did not answer: the agent retries
			sleep(ctx, time.Second)
			continue
		}
		m.primary.Store(holder == k.Identity)
		if holder == k.Identity {
			if err := k.MarkBootstrapped(ctx); err != nil {
				sleep(ctx, time.Second)
				continue
			}
		}
		var stop *primary.Stop
		if err := k.Keep(ctx, m); errors.As(err, &stop) {
			m.primary.Store(false)
		}
	}
}

// standInMember is the engine under a stand-in agent: primary from its start as the holder, or
// from its promotion (at once); a replica follows nothing.
type standInMember struct{ primary atomic.Bool }

func (m *standInMember) IsPrimary(context.Context) (bool, error) { return m.primary.Load(), nil }
func (m *standInMember) Promote(context.Context) error           { m.primary.Store(true); return nil }
func (m *standInMember) Follow(context.Context, bool) error      { return nil }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
