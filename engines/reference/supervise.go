package reference

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	refagent "github.com/datafleet-dev/datafleet/engines/reference/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// settledPoll is how often a settled instance is looked at again: a server that stops answering
// while its pod stays ready sends no event.
const settledPoll = time.Minute

// Supervise implements engine.Supervisor. The framework has listed the pods and read the live
// StatefulSet; the engine adds only its own steps, in order: the generated password exists; every
// agent says whether its server serves; then the rolling restart a parameter change asks for
// (Supervision.Roll with the defaults: one pod at a time, once every pod is ready). It must be
// idempotent and write nothing once the instance is settled (managertest.Settled checks).
func (Engine) Supervise(ctx context.Context, s *engine.Supervision) error {
	inst := s.Instance
	key := types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}
	if _, err := secrets.EnsureGenerated(ctx, s.Client, key, names.InstanceLabels(Name, inst.Name), s.Owner, refagent.PasswordKey); err != nil {
		return fmt.Errorf("password secret: %w", err)
	}
	statuses := fwagent.Probe(ctx, s.Agents, s.Pods)
	s.WaitForMembers(statuses)
	if _, err := s.Roll(ctx, engine.Roll{}); err != nil {
		return err
	}
	for i, p := range s.Pods {
		m := v1alpha1.Member{Name: p.Name, Role: refagent.RoleServer, State: "not answering"}
		if st := statuses[i]; st != nil && st.Ready {
			m.State = "serving"
		}
		s.Observation.Members = append(s.Observation.Members, m)
	}
	s.Observation.Endpoints = []v1alpha1.Endpoint{{Name: "redis", Host: names.ServiceHost(workload.ServiceName(inst), inst.Namespace), Port: refagent.Port}}
	s.Poll = settledPoll
	return nil
}
