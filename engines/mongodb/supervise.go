package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.Watcher = Engine{}

// Watches implements engine.Watcher: the pods, whose readiness tells when a member's role changed.
func (Engine) Watches() []engine.Watch {
	return []engine.Watch{{Type: &corev1.Pod{}}}
}

// settledPoll is how often a settled instance is looked at again: an election sends no event
// when both pods stay ready.
const settledPoll = 30 * time.Second

var _ engine.Supervisor = Engine{}

// Supervise implements engine.Supervisor. In order: the generated keyfile and administrator
// password exist; every agent is asked for its member's role, which goes on the pod (the client
// Service selects the primary); then at most one pod of a rolling update is replaced, the
// secondaries first and the primary last, after it stepped down.
func (e Engine) Supervise(ctx context.Context, in engine.SuperviseInput) (engine.SuperviseResult, error) {
	inst := in.Instance
	labels := names.InstanceLabels(Name, inst.Name)
	key := types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}
	if err := secrets.EnsureGenerated(ctx, in.Client, key, labels, in.Owner, KeyfileKey, PasswordKey); err != nil {
		return engine.SuperviseResult{}, fmt.Errorf("keyfile secret: %w", err)
	}
	pods := &corev1.PodList{}
	if err := in.Client.List(ctx, pods, client.InNamespace(inst.Namespace), client.MatchingLabels(labels)); err != nil {
		return engine.SuperviseResult{}, err
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return workload.Ordinal(pods.Items[i].Name) < workload.Ordinal(pods.Items[j].Name)
	})
	if e.agentAt != nil {
		in.Agents.Address = e.agentAt
	}
	s := &supervision{in: in, pods: pods.Items, statuses: fwagent.Probe(ctx, in.Agents, pods.Items)}
	if err := s.label(ctx); err != nil {
		return engine.SuperviseResult{}, err
	}
	if err := s.roll(ctx); err != nil {
		return engine.SuperviseResult{}, err
	}
	return s.result(), nil
}

type supervision struct {
	in       engine.SuperviseInput
	pods     []corev1.Pod
	statuses []*fwagent.Status
	primary  *corev1.Pod
	engine.NotReady
}

func (s *supervision) role(i int) string {
	if st := s.statuses[i]; st != nil && st.Ready {
		return st.Role
	}
	return ""
}

// label puts each member's reported role on its pod. Two primaries can be reported for a moment
// after an election (the old one has not noticed yet): then no pod is labelled primary until one
// steps down, so clients never write to a primary that is about to roll its writes back.
func (s *supervision) label(ctx context.Context) error {
	primaries := 0
	for i := range s.pods {
		if s.role(i) == RolePrimary {
			primaries++
			s.primary = &s.pods[i]
		}
	}
	if primaries > 1 {
		s.primary = nil
		s.Wait("TwoPrimaries", "two members report primary; waiting for the election to settle", time.Second)
	}
	for i := range s.pods {
		role := s.role(i)
		if role == RolePrimary && primaries > 1 {
			role = ""
		}
		if err := workload.SetRole(ctx, s.in.Client, &s.pods[i], role); err != nil {
			return err
		}
	}
	return nil
}

// roll replaces pods that run an outdated revision, one at a time and only when every pod is
// ready: secondaries highest ordinal first, then the primary, once it has stepped down.
func (s *supervision) roll(ctx context.Context) error {
	inst := s.in.Instance
	live := &appsv1.StatefulSet{}
	if err := s.in.Client.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: names.Child(inst.Name, "", names.MaxStatefulSet)}, live); err != nil {
		return client.IgnoreNotFound(err)
	}
	ro := workload.RolloutOf(live, s.pods)
	if len(ro.Outdated) == 0 {
		return nil
	}
	if !ro.AllReady || s.primary == nil {
		s.Wait("RollingUpdate", fmt.Sprintf("%d pods to update; waiting for every member to be ready and a primary", len(ro.Outdated)), 2*time.Second)
		return nil
	}
	outdated := make([]string, len(ro.Outdated))
	byName := map[string]*corev1.Pod{}
	for i, p := range ro.Outdated {
		outdated[i], byName[p.Name] = p.Name, p
	}
	victim := byName[RollOrder(outdated, s.primary.Name)[0]]
	if victim.Name == s.primary.Name && len(s.pods) > 1 {
		// An agent from before mutual TLS cannot be asked; mongod steps down by itself when its
		// pod is stopped (a shorter handover, once per pod, during the operator's upgrade).
		switch err := s.in.Agents.Pod(s.primary).Act(ctx, ActionStepDown, nil); {
		case err == nil:
			s.Wait("RollingUpdate", fmt.Sprintf("the primary %s is stepping down before it is updated", victim.Name), 2*time.Second)
			return nil
		case !errors.Is(err, fwagent.ErrPredatesTLS):
			s.Wait("RollingUpdate", fmt.Sprintf("asking the primary %s to step down: %v", victim.Name, err), 5*time.Second)
			return nil
		}
	}
	if err := workload.Replace(ctx, s.in.Client, victim); err != nil {
		return err
	}
	s.Wait("RollingUpdate", fmt.Sprintf("replacing %s (%d pods to update)", victim.Name, len(ro.Outdated)), 2*time.Second)
	return nil
}

// result turns what the supervisor saw into the instance's observation.
func (s *supervision) result() engine.SuperviseResult {
	inst := s.in.Instance
	obs := s.in.Generic
	for i, p := range s.pods {
		m := v1alpha1.Member{Name: p.Name, State: "not answering"}
		if st := s.statuses[i]; st != nil {
			m.Role, m.State = st.Role, "ready"
			if !st.Ready {
				m.State = st.Detail
			}
		}
		obs.Members = append(obs.Members, m)
	}
	if s.primary != nil {
		obs.CurrentPrimary = s.primary.Name
	}
	obs.Endpoints = []v1alpha1.Endpoint{{Name: "mongodb", Host: serviceName(inst) + "." + inst.Namespace + ".svc", Port: Port}}
	if why := workload.UnreadyMember(s.pods, s.statuses, inst.DesiredReplicas()); why != "" {
		s.Wait("MemberNotReady", why, 2*time.Second)
	}
	switch {
	case s.Reason != "":
		obs.Ready, obs.Reason, obs.Message = false, s.Reason, s.Message
	case obs.Ready && obs.CurrentPrimary == "":
		obs.Ready, obs.Reason, obs.Message = false, "NoPrimary", "no member is primary yet"
	}
	requeue := s.Requeue
	if requeue == 0 {
		requeue = settledPoll
	}
	return engine.SuperviseResult{Observation: obs, RequeueAfter: requeue}
}

var _ engine.MemberDrainer = Engine{}

// DrainMember implements engine.MemberDrainer: the primary removes the leaving member from the
// replica set's configuration before its pod stops, so the set keeps a majority of its voters.
func (e Engine) DrainMember(ctx context.Context, in engine.SuperviseInput, pod string) error {
	inst := in.Instance
	sel := names.InstanceLabels(Name, inst.Name)
	sel[workload.RoleLabel] = RolePrimary
	p, err := workload.ReadyPod(ctx, in.Client, inst.Namespace, sel)
	if err != nil {
		return err
	}
	if p == nil {
		return errors.New("no ready primary to remove the member")
	}
	return in.Agents.Pod(p).Act(ctx, ActionRemoveMember,
		url.Values{ParamHost: {MemberHost(inst, workload.Ordinal(pod))}})
}
