package postgres

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=patch

var (
	_ engine.Supervisor = Engine{}
	_ engine.Watcher    = Engine{}
)

// settledPoll is how often an instance whose primary serves is looked at again, for what sends
// no event (a replica that stops streaming while its pod stays ready). A lapsing lease does not
// wait for it: the lease watch wakes the instance at the lease's expiry.
const settledPoll = 30 * time.Second

// Watches implements engine.Watcher: the primary lease (the framework watches the pods), whose
// renewals every few seconds are filtered out: only a new holder or a request matters. Each
// renewal is still observed as it arrives, so that the lease's observed expiry (primary.Observer)
// counts from when it was made rather than from the next reconcile, and it moves the wake at
// that expiry (Expires), which is how a holder that stopped renewing is noticed.
func (e Engine) Watches() []engine.Watch {
	leaseChanged := predicate.Funcs{UpdateFunc: func(ev event.UpdateEvent) bool {
		o, n := primary.Read(ev.ObjectOld.(*coordinationv1.Lease)), primary.Read(ev.ObjectNew.(*coordinationv1.Lease))
		return o.Holder != n.Holder || o.StepDown != n.StepDown || o.StepDownTo != n.StepDownTo || o.Bootstrapped != n.Bootstrapped
	}}
	return []engine.Watch{{Type: &coordinationv1.Lease{}, Predicates: []predicate.Predicate{leaseChanged}, Expires: e.leaseExpiry}}
}

// leaseExpiry observes a held lease's renewal and gives the moment just after it would lapse;
// zero for a lease with no holder (the reconcile that saw it vacant elects).
func (e Engine) leaseExpiry(o client.Object) time.Time {
	l := o.(*coordinationv1.Lease)
	s := e.leases.Observe(client.ObjectKeyFromObject(l), primary.Read(l), time.Now())
	if s.Holder == "" {
		return time.Time{}
	}
	return s.ExpiresAt().Add(lapseMargin)
}

// lapseMargin is how long after a lease's expiry its instance is looked at, so that the look
// finds it expired.
const lapseMargin = 500 * time.Millisecond

// member is one pod and what its agent said.
type member struct {
	pod    *corev1.Pod
	status *fwagent.Status // nil when the agent did not answer
}

// Supervise implements engine.Supervisor. In order: the generated replication password and the
// primary lease exist; a vacant lease gets a new holder (failover); pods are labelled with the
// role their agent reports, which is what the Services select; then at most one step of a
// switchover (away from a primary a scale-down removes, or to spec.primary) or a rolling
// replacement of outdated pods.
func (e Engine) Supervise(ctx context.Context, sup *engine.Supervision) error {
	inst := sup.Instance
	labels := names.InstanceLabels(Name, inst.Name)
	key := func(name string) types.NamespacedName {
		return types.NamespacedName{Namespace: inst.Namespace, Name: name}
	}
	if _, err := secrets.EnsureGenerated(ctx, sup.Client, key(ReplicationSecretName(inst)), labels, sup.Owner, passwordKey); err != nil {
		return fmt.Errorf("replication secret: %w", err)
	}
	sts := names.Child(inst.Name, "", names.MaxStatefulSet)
	lease, err := primary.Ensure(ctx, sup.Client, key(LeaseName(inst)), labels, &sup.Owner, sts+"-0", sup.Now)
	if err != nil {
		return fmt.Errorf("primary lease: %w", err)
	}
	// The holder asks the members at these addresses to confirm it when it cannot renew.
	addresses := map[string]string{}
	for _, p := range sup.Pods {
		addresses[p.Name] = p.Status.PodIP
	}
	if lease, err = primary.SetMembers(ctx, sup.Client, lease, addresses); err != nil {
		return fmt.Errorf("primary lease: recording the members: %w", err)
	}
	s := &supervision{Supervision: sup, leases: e.leases, key: key(LeaseName(inst)), members: probe(ctx, sup.Agents, sup.Pods), sts: sts}
	s.read(lease)
	// A primary that a scale-down removes moves first; a rolling update goes before a switchover
	// that spec.primary asks for: its own switchovers would otherwise be undone, and the
	// requested one follows once every pod is updated.
	for _, step := range []func(context.Context) (bool, error){s.recoverInPlace, s.elect, s.label, s.keepPrimary, s.roll, s.switchover} {
		done, err := step(ctx)
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	s.report()
	return nil
}

type supervision struct {
	*engine.Supervision
	lease   *coordinationv1.Lease
	state   primary.State
	leases  *primary.Observer
	key     types.NamespacedName
	members []member // one per pod, pointing into Pods
	sts     string
}

// read takes the lease as it is now, its expiry as this operator observed it.
func (s *supervision) read(l *coordinationv1.Lease) {
	s.lease, s.state = l, s.leases.Observe(s.key, primary.Read(l), s.Now)
}

// servingPrimary is the lease holder if its agent reports a ready primary, else nil.
func (s *supervision) servingPrimary() *member {
	if m := s.member(s.state.Holder); m != nil && m.status != nil && m.status.Role == RolePrimary && m.status.Ready {
		return m
	}
	return nil
}

func (s *supervision) member(name string) *member {
	for i := range s.members {
		if s.members[i].pod.Name == name {
			return &s.members[i]
		}
	}
	return nil
}

// elect names a new primary when the lease is vacant (the primary stepped down, stopped, or
// stopped renewing) and the instance was bootstrapped: the first primary is named when the lease
// is created.
func (s *supervision) elect(ctx context.Context) (bool, error) {
	if !s.state.Vacant(s.Now) {
		return false, nil
	}
	if !s.state.Bootstrapped {
		s.Wait("Provisioning", fmt.Sprintf("waiting for %s to initialise the database", s.sts+"-0"), 5*time.Second)
		return false, nil
	}
	if vacant, answered := s.stillVacant(ctx); !answered || !vacant {
		return !answered, nil
	}
	var cands []primary.Candidate
	var unconfirmed []string
	for _, m := range s.members {
		if !s.state.Electable(m.pod.Name) {
			unconfirmed = append(unconfirmed, m.pod.Name)
			continue
		}
		c := primary.Candidate{Name: m.pod.Name}
		if st := m.status; st != nil && st.Role == RoleReplica && st.Position != nil && m.pod.DeletionTimestamp.IsZero() {
			c.Healthy, c.Position = true, *st.Position
		}
		cands = append(cands, c)
	}
	// A primary that stepped down named its successor (a rolling update's or spec.primary's choice).
	preferred := s.Instance.Spec.Primary
	if s.state.StepDown {
		preferred = s.state.StepDownTo
	}
	winner, err := primary.Elect(cands, preferred, s.quorum())
	if err != nil {
		msg := "electing a new primary: " + err.Error()
		if len(unconfirmed) > 0 {
			msg += fmt.Sprintf("; %s may serve on while its members confirm it, and %s are not among them",
				s.state.Holder, strings.Join(unconfirmed, ", "))
		}
		s.Wait("NoPrimary", msg, 2*time.Second)
		return true, nil
	}
	assigned, err := primary.Assign(ctx, s.Client, s.lease, winner, s.Now)
	if err != nil {
		return false, fmt.Errorf("assigning the primary lease to %s: %w", winner, err)
	}
	log.FromContext(ctx).Info("elected a new primary", "primary", winner, "previous", s.state.Holder)
	s.read(assigned)
	s.Wait("Failover", fmt.Sprintf("%s was elected primary and is being promoted", winner), time.Second)
	return true, nil
}

// stillVacant reads the lease from the API server itself before another primary is named. While
// the API server is out of reach the cache keeps the last renewal it saw, the holder cannot renew
// (its members keep it serving, primary.Keeper), and an election sent then is applied when the
// API server comes back, before the holder can renew: a primary that did nothing wrong would be
// replaced after every outage longer than the lease (seen in the e2e outage scenario, with the
// Update waiting in the stopped API server's socket). So an unanswered read elects nothing and
// forgets what was seen of the lease: its expiry then counts from the next look, as for an
// operator that has just started, which leaves the holder time to renew once the API server is
// back.
func (s *supervision) stillVacant(ctx context.Context) (vacant, answered bool) {
	ctx, cancel := context.WithTimeout(ctx, primary.CallTimeout)
	defer cancel()
	l := &coordinationv1.Lease{}
	if err := s.Uncached().Get(ctx, s.key, l); err != nil {
		s.leases.Forget(s.key)
		s.Wait("NoPrimary", fmt.Sprintf("%s's lease looks lapsed, but the API server did not answer to confirm it: %v", s.state.Holder, err), 2*time.Second)
		return false, false
	}
	s.read(l)
	return s.state.Vacant(s.Now), true
}

// quorum is how many replicas must answer before one is elected: under synchronous replication
// with n of r replicas confirming each commit, any r-n+1 of them include one that has every
// committed write.
func (s *supervision) quorum() int {
	n := int(ptr.Deref(s.Instance.Spec.SynchronousReplicas, 0))
	if n == 0 {
		return 1
	}
	return int(s.Instance.DesiredReplicas()) - 1 - n + 1
}

// label puts the role each agent reports on its pod: the read-write Service selects the lease
// holder only once it reports primary, so clients never reach a primary that is not the holder.
func (s *supervision) label(ctx context.Context) (bool, error) {
	for _, m := range s.members {
		want := ""
		if st := m.status; st != nil && st.Ready {
			switch {
			case st.Role == RolePrimary && m.pod.Name == s.state.Holder:
				want = RolePrimary
			case st.Role == RoleReplica:
				want = RoleReplica
			}
		}
		if err := workload.SetRole(ctx, s.Client, m.pod, want); err != nil {
			return false, err
		}
	}
	// A promotion sends no event (the new holder's renewals are filtered out, its pod does not
	// change): poll until the holder serves writes, so the Service follows it within a second
	// rather than at the lease's next expiry.
	if s.state.Holder != "" && s.servingPrimary() == nil {
		s.Wait("WaitingForPrimary", fmt.Sprintf("%s holds the primary lease but does not serve writes yet", s.state.Holder), time.Second)
	}
	return false, nil
}

// switchover asks the primary to step down when spec.primary names a healthy replica.
func (s *supervision) switchover(ctx context.Context) (bool, error) {
	target := s.Instance.Spec.Primary
	if target == "" || target == s.state.Holder {
		return false, nil
	}
	return s.stepDown(ctx, target, fmt.Sprintf("switching over to %s as spec.primary asks", target))
}

// stepDown asks the holder to step down in favour of target once both are healthy and target
// streams from the holder: a clean shutdown hands its last WAL only to connected replicas, and a
// target that is not connected would be promoted without it (once seen in the chaos step: a
// switchover back to spec.primary right after a failover, to a replica still reconnecting; two
// members then went on separate histories under the same timeline ID).
func (s *supervision) stepDown(ctx context.Context, target, why string) (bool, error) {
	cur, next := s.member(s.state.Holder), s.member(target)
	if cur == nil || cur.status == nil || cur.status.Role != RolePrimary || next == nil || next.status == nil ||
		next.status.Role != RoleReplica || !next.status.Ready {
		s.Wait("Switchover", why+": waiting for both pods to be healthy", 2*time.Second)
		return true, nil
	}
	if !streams(cur.status.Replicas, target) {
		s.Wait("Switchover", fmt.Sprintf("%s: waiting for %s to stream from %s", why, target, s.state.Holder), 2*time.Second)
		return true, nil
	}
	if err := primary.RequestStepDown(ctx, s.Client, s.lease, target); err != nil {
		return false, fmt.Errorf("asking %s to step down: %w", s.state.Holder, err)
	}
	s.Wait("Switchover", why, time.Second)
	return true, nil
}

// streams reports whether the replica named name streams, among a primary's replicas.
func streams(replicas []fwagent.ReplicaStatus, name string) bool {
	return slices.ContainsFunc(replicas, func(r fwagent.ReplicaStatus) bool { return r.Name == name && r.State == "streaming" })
}

// roll replaces pods that run an outdated revision, one at a time and only when every pod is
// ready: replicas first (highest ordinal first), then a switchover to an updated replica, then
// the former primary.
func (s *supervision) roll(ctx context.Context) (bool, error) {
	return s.Roll(ctx, engine.Roll{
		Held: s.state.Vacant(s.Now),
		Next: func(outdated []*corev1.Pod) *corev1.Pod {
			for _, p := range outdated {
				if p.Name != s.state.Holder {
					return p // replicas first
				}
			}
			return outdated[0]
		},
		Before: func(ctx context.Context, victim *corev1.Pod, outdated []*corev1.Pod) (bool, error) {
			if victim.Name != s.state.Holder || len(s.members) <= 1 {
				return true, nil
			}
			for _, m := range s.members {
				if m.pod.Name != s.state.Holder && !slices.Contains(outdated, m.pod) {
					_, err := s.stepDown(ctx, m.pod.Name, "rolling update: switching over before updating the primary")
					return false, err
				}
			}
			return true, nil
		},
	})
}

// report completes the observation with the members, the primary and the endpoints, and looks
// again just after the lease would expire.
func (s *supervision) report() {
	inst := s.Instance
	obs := &s.Observation
	var replicas []fwagent.ReplicaStatus
	if m := s.servingPrimary(); m != nil {
		obs.CurrentPrimary = s.state.Holder
		replicas = m.status.Replicas
		obs.Archive = m.status.Archive
	}
	for _, m := range s.members {
		obs.Members = append(obs.Members, memberStatus(m, replicas))
	}
	sort.Slice(obs.Members, func(i, j int) bool {
		return workload.Ordinal(obs.Members[i].Name) < workload.Ordinal(obs.Members[j].Name)
	})
	ns := inst.Namespace
	obs.Endpoints = []v1alpha1.Endpoint{
		{Name: "read-write", Host: names.ServiceHost(serviceName(inst, ""), ns), Port: port},
		{Name: "read-only", Host: names.ServiceHost(serviceName(inst, "ro"), ns), Port: port},
	}
	statuses := make([]*fwagent.Status, len(s.members))
	for i, m := range s.members {
		statuses[i] = m.status
	}
	s.WaitForMembers(statuses)
	if obs.CurrentPrimary == "" {
		s.Unready("NoPrimary", "no pod is serving as primary yet")
	}
	switch {
	case s.state.Vacant(s.Now):
		s.Poll = time.Second
	case obs.CurrentPrimary == "":
		// Not serving yet: look again by the lease's expiry at the latest, as before the wake.
		s.Poll = max(s.state.ExpiresAt().Sub(s.Now)+lapseMargin, time.Second)
	default:
		s.Poll = settledPoll
	}
}

func memberStatus(m member, replicas []fwagent.ReplicaStatus) v1alpha1.Member {
	out := v1alpha1.Member{Name: m.pod.Name}
	switch {
	case m.status == nil:
		out.State = "not answering"
	case !m.status.Ready:
		out.State = "not ready"
	case m.status.Role == RolePrimary:
		out.Role, out.State = RolePrimary, "accepting writes"
	default:
		out.Role, out.State = m.status.Role, "not streaming"
		for _, r := range replicas {
			if r.Name == m.pod.Name {
				out.State = r.State
				if r.Synchronous {
					out.State += " (synchronous)"
				}
			}
		}
	}
	return out
}

// probe asks every pod's agent for its status.
func probe(ctx context.Context, agents fwagent.Dialer, pods []corev1.Pod) []member {
	statuses := fwagent.Probe(ctx, agents, pods)
	members := make([]member, len(pods))
	for i := range pods {
		members[i] = member{pod: &pods[i], status: statuses[i]}
	}
	return members
}
