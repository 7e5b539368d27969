package postgres

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// A scale-down never takes the primary away: the StatefulSet removes the highest ordinals, and
// removing the primary with them would be a failover (its last asynchronous commits lost, a
// lease to wait out) where a switchover loses nothing. So the primary is a member the framework
// drains (engine.MemberDrainer): it holds the StatefulSet's replicas while a leaving pod holds
// the lease, and the supervisor switches over to a member that stays meanwhile (keepPrimary).
// Replicas leave as they are; their volumes go with them, as for any drained member, so that a
// later scale-up clones a fresh replica instead of reviving a stale one.

var _ engine.MemberDrainer = Engine{}

// DrainMember implements engine.MemberDrainer: a replica may leave; the primary may not until a
// switchover has moved the lease to a member that stays.
func (Engine) DrainMember(ctx context.Context, in engine.SuperviseInput, pod string) error {
	lease := &coordinationv1.Lease{}
	if err := in.Client.Get(ctx, types.NamespacedName{Namespace: in.Instance.Namespace, Name: LeaseName(in.Instance)}, lease); err != nil {
		return fmt.Errorf("reading the primary lease: %w", err)
	}
	if holder := primary.Read(lease).Holder; holder == pod {
		return fmt.Errorf("%s is the primary: it leaves after a switchover to a member that stays", pod)
	}
	return nil
}

// keepPrimary switches over when the lease holder is among the members a scale-down removes: to
// spec.primary (which admission keeps among the members that stay), or to the first member that
// stays and streams from the holder.
func (s *supervision) keepPrimary(ctx context.Context) (bool, error) {
	stay := int(s.Instance.DesiredReplicas())
	if s.state.Holder == "" || workload.Ordinal(s.state.Holder) < stay {
		return false, nil
	}
	why := fmt.Sprintf("scaling down to %d members: %s leaves, so the primary moves first", stay, s.state.Holder)
	if target := s.Instance.Spec.Primary; target != "" {
		return s.stepDown(ctx, target, why+" to "+target)
	}
	var replicas []fwagent.ReplicaStatus
	if m := s.servingPrimary(); m != nil {
		replicas = m.status.Replicas
	}
	for ord := range stay {
		if name := workload.PodName(s.Instance, ord); streams(replicas, name) {
			return s.stepDown(ctx, name, why+" to "+name)
		}
	}
	s.Wait("ScalingDown", why+": waiting for a member that stays to stream from it", 2*time.Second)
	return true, nil
}
