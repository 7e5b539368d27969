package engine

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// Supervisor is implemented by engines that act on a running instance beyond applying its
// children: electing a primary, labelling pods by role, replacing pods one at a time in an order
// only the engine knows. Supervise runs after the children are applied, with a Supervision the
// framework prepared (the pods, the live workload, the generic observation); the engine runs its
// own steps on it, completes its Observation and records why the instance is not ready yet; the
// framework folds that into the status. It may write, must be idempotent (a restart can
// interrupt it anywhere), and must write nothing once the instance is settled. An error ends the
// pass; what it recorded before is not used.
type Supervisor interface {
	Supervise(ctx context.Context, s *Supervision) error
}

// SuperviseInput is what the framework gives an engine that acts on a running instance.
type SuperviseInput struct {
	Instance *v1alpha1.ServiceInstance
	Release  catalog.Release
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads past the cache, from the API server itself: for a decision that must not
	// rest on what the cache kept while the API server was out of reach (nil: Client).
	APIReader client.Reader
	// Children as rendered and applied.
	Children []client.Object
	// Owner is the owner reference for objects the engine creates outside Render (a lease, a
	// generated Secret), so they go when the instance goes. It is not a controller reference, so
	// pruning never removes them.
	Owner metav1.OwnerReference
	Now   time.Time
	// Agents reaches the instance's agents with the operator's client certificate.
	Agents fwagent.Dialer
}

// Supervision is one Supervisor pass over an instance.
type Supervision struct {
	SuperviseInput
	// Pods are the instance's pods, by ordinal, from the cache.
	Pods []corev1.Pod
	// Workload is the live StatefulSet the engine rendered, nil until it exists.
	Workload *appsv1.StatefulSet
	// Observation starts as the framework's own, from the rendered workloads' status; the engine
	// adds its members, endpoints, current primary.
	Observation Observation
	// Poll is when to look again once nothing is pending (zero: only when something watched
	// changes), for what sends no event: an election inside the engine, a node leaving its cluster.
	Poll time.Duration
	NotReady
}

// NotReady gathers, while a Supervisor runs, why the instance is not ready (the first reason
// given wins: it is the earliest step's) and when to look again (the soonest time wins).
type NotReady struct {
	Reason, Message string
	Requeue         time.Duration
}

// Wait records a reason to wait and a time to look again.
func (n *NotReady) Wait(reason, message string, after time.Duration) {
	if n.Reason == "" {
		n.Reason, n.Message = reason, message
	}
	if n.Requeue == 0 || after < n.Requeue {
		n.Requeue = after
	}
}

// Unready marks an observation that would be ready as not, for a reason that needs no earlier
// look than Poll (no primary yet, no node answering); a waiting step's reason and a generic one
// (the workload still rolling out) come first.
func (s *Supervision) Unready(reason, message string) {
	if s.Reason == "" && s.Observation.Ready {
		s.Observation.Ready, s.Observation.Reason, s.Observation.Message = false, reason, message
	}
}

// WaitForMembers waits for every member the instance wants whose agent does not report it
// serving (the StatefulSet counts a pod ready for a moment after its container exited).
func (s *Supervision) WaitForMembers(statuses []*fwagent.Status) {
	if why := workload.UnreadyMember(s.Pods, statuses, s.Instance.DesiredReplicas()); why != "" {
		s.Wait("MemberNotReady", why, 2*time.Second)
	}
}

// Result is the observation the pass ends with and when to look again.
func (s *Supervision) Result() (Observation, time.Duration) {
	obs := s.Observation
	if s.Reason != "" {
		obs.Ready, obs.Reason, obs.Message = false, s.Reason, s.Message
	}
	if s.Requeue != 0 {
		return obs, s.Requeue
	}
	return obs, s.Poll
}

// Roll is an engine's part in replacing the pods of its OnDelete StatefulSet that run an older
// revision; Supervision.Roll does the rest.
type Roll struct {
	// Held is true while the engine knows a reason to take no pod down besides a pod not being
	// ready (a node missing from its cluster, no primary, a vacant lease).
	Held bool
	// Waiting completes "waiting for …" while the rollout is held (default: every pod ready).
	Waiting string
	// Next picks the pod to replace among the outdated ones, given highest ordinal first; nil
	// takes the first.
	Next func(outdated []*corev1.Pod) *corev1.Pod
	// Before runs just before the pod is replaced. It returns false to replace it at a later
	// pass, after recording with Wait what it waits for (a primary stepping down, a quorum).
	Before func(ctx context.Context, pod *corev1.Pod, outdated []*corev1.Pod) (bool, error)
}

// Roll replaces at most one outdated pod per pass, and only while every pod the StatefulSet wants
// is ready and the engine does not hold the rollout; the StatefulSet (OnDelete) recreates it at
// the current revision. It reports whether pods are outdated, so that an engine can keep later
// steps (a switchover) for after the rollout.
func (s *Supervision) Roll(ctx context.Context, r Roll) (bool, error) {
	if s.Workload == nil {
		return false, nil
	}
	ro := workload.RolloutOf(s.Workload, s.Pods)
	if len(ro.Outdated) == 0 {
		return false, nil
	}
	if !ro.AllReady || r.Held {
		waiting := r.Waiting
		if waiting == "" {
			waiting = "every pod to be ready"
		}
		s.Wait("RollingUpdate", fmt.Sprintf("%d pods to update; waiting for %s", len(ro.Outdated), waiting), 2*time.Second)
		return true, nil
	}
	victim := ro.Outdated[0]
	if r.Next != nil {
		victim = r.Next(ro.Outdated)
	}
	if r.Before != nil {
		if ok, err := r.Before(ctx, victim, ro.Outdated); err != nil || !ok {
			return true, err
		}
	}
	if err := workload.Replace(ctx, s.Client, victim); err != nil {
		return true, err
	}
	s.Wait("RollingUpdate", fmt.Sprintf("replacing %s (%d pods to update)", victim.Name, len(ro.Outdated)), 2*time.Second)
	return true, nil
}

// Uncached is APIReader, or Client where the input has none.
func (in SuperviseInput) Uncached() client.Reader {
	if in.APIReader != nil {
		return in.APIReader
	}
	return in.Client
}
