package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// settledPoll is how often a settled instance is looked at again: an election sends no event
// when both pods stay ready.
const settledPoll = 30 * time.Second

var _ engine.Supervisor = Engine{}

// Supervise implements engine.Supervisor. In order: the generated keyfile and administrator
// password exist; every agent is asked for its member's role, which goes on the pod (the client
// Service selects the primary); then at most one pod of a rolling update is replaced, the
// secondaries first and the primary last, after it stepped down.
func (e Engine) Supervise(ctx context.Context, sup *engine.Supervision) error {
	inst := sup.Instance
	key := types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}
	if _, err := secrets.EnsureGenerated(ctx, sup.Client, key, names.InstanceLabels(Name, inst.Name), sup.Owner, mongoagent.KeyfileKey, mongoagent.PasswordKey); err != nil {
		return fmt.Errorf("keyfile secret: %w", err)
	}
	if e.agentAt != nil {
		sup.Agents.Address = e.agentAt
	}
	s := &supervision{Supervision: sup, statuses: fwagent.Probe(ctx, sup.Agents, sup.Pods)}
	if err := s.label(ctx); err != nil {
		return err
	}
	if _, err := s.roll(ctx); err != nil {
		return err
	}
	s.report()
	return nil
}

type supervision struct {
	*engine.Supervision
	statuses []*fwagent.Status
	primary  *corev1.Pod
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
	for i := range s.Pods {
		if s.role(i) == mongoagent.RolePrimary {
			primaries++
			s.primary = &s.Pods[i]
		}
	}
	if primaries > 1 {
		s.primary = nil
		s.Wait("TwoPrimaries", "two members report primary; waiting for the election to settle", time.Second)
	}
	for i := range s.Pods {
		role := s.role(i)
		if role == mongoagent.RolePrimary && primaries > 1 {
			role = ""
		}
		if err := workload.SetRole(ctx, s.Client, &s.Pods[i], role); err != nil {
			return err
		}
	}
	return nil
}

// roll replaces pods that run an outdated revision, one at a time and only when every pod is
// ready: secondaries highest ordinal first, then the primary, once it has stepped down.
func (s *supervision) roll(ctx context.Context) (bool, error) {
	return s.Roll(ctx, engine.Roll{
		Held:    s.primary == nil,
		Waiting: "every member to be ready and a primary",
		Next: func(outdated []*corev1.Pod) *corev1.Pod {
			names := make([]string, len(outdated))
			byName := map[string]*corev1.Pod{}
			for i, p := range outdated {
				names[i], byName[p.Name] = p.Name, p
			}
			return byName[RollOrder(names, s.primary.Name)[0]]
		},
		Before: func(ctx context.Context, victim *corev1.Pod, _ []*corev1.Pod) (bool, error) {
			if victim.Name != s.primary.Name || len(s.Pods) <= 1 {
				return true, nil
			}
			// An agent from before mutual TLS cannot be asked; mongod steps down by itself when
			// its pod is stopped (a shorter handover, once per pod, during the operator's upgrade).
			switch err := s.Agents.Pod(s.primary).Act(ctx, mongoagent.ActionStepDown, nil); {
			case err == nil:
				s.Wait("RollingUpdate", fmt.Sprintf("the primary %s is stepping down before it is updated", victim.Name), 2*time.Second)
				return false, nil
			case !errors.Is(err, fwagent.ErrPredatesTLS):
				s.Wait("RollingUpdate", fmt.Sprintf("asking the primary %s to step down: %v", victim.Name, err), 5*time.Second)
				return false, nil
			}
			return true, nil
		},
	})
}

// report completes the observation with the members, the primary and the endpoint.
func (s *supervision) report() {
	inst := s.Instance
	obs := &s.Observation
	for i, p := range s.Pods {
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
	obs.Endpoints = []v1alpha1.Endpoint{{Name: "mongodb", Host: names.ServiceHost(workload.ServiceName(inst), inst.Namespace), Port: mongoagent.Port}}
	s.WaitForMembers(s.statuses)
	if obs.CurrentPrimary == "" {
		s.Unready("NoPrimary", "no member is primary yet")
	}
	s.Poll = settledPoll
}

var _ engine.MemberDrainer = Engine{}

// DrainMember implements engine.MemberDrainer: the primary removes the leaving member from the
// replica set's configuration before its pod stops, so the set keeps a majority of its voters.
func (e Engine) DrainMember(ctx context.Context, in engine.SuperviseInput, pod string) error {
	inst := in.Instance
	p, err := workload.ReadyMember(ctx, in.Client, Name, inst, mongoagent.RolePrimary)
	if err != nil {
		return fmt.Errorf("removing the member: %w", err)
	}
	return in.Agents.Pod(p).Act(ctx, mongoagent.ActionRemoveMember,
		url.Values{mongoagent.ParamHost: {MemberHost(inst, workload.Ordinal(pod))}})
}
