package instance

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
)

// observe reads the rendered workloads' status from the cache and lets the engine refine it.
func (r *Reconciler) observe(ctx context.Context, s *scope) (bool, error) {
	obs, err := r.observeWorkloads(ctx, s)
	if err != nil {
		return false, err
	}
	if sv, ok := r.Engine.(engine.Supervisor); ok {
		res, err := sv.Supervise(ctx, engine.SuperviseInput{Instance: s.inst, Release: s.release, Client: r.Client,
			Children: s.children, Owner: r.ownerRef(s.inst), Generic: obs, Now: r.now(), Agents: s.agents})
		if err != nil {
			return false, describeErr("supervising instance", err)
		}
		obs = res.Observation
		s.requeue(res.RequeueAfter)
	} else if o, ok := r.Engine.(engine.Observer); ok {
		obs, err = o.Observe(ctx, engine.ObserveInput{Instance: s.inst, Release: s.release, Reader: r.Client, Generic: obs})
		if err != nil {
			return false, describeErr("observing instance", err)
		}
	}
	s.observation = &obs
	return false, nil
}

// observeWorkloads is the generic observation: every rendered StatefulSet has rolled out its
// current revision and all its replicas are ready.
func (r *Reconciler) observeWorkloads(ctx context.Context, s *scope) (engine.Observation, error) {
	obs := engine.Observation{Ready: true}
	for _, o := range s.children {
		want, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		live := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live); err != nil {
			if ignoreGone(err) != nil {
				return obs, err
			}
			obs.Ready = false
			obs.Reason, obs.Message = ReasonProvisioning, fmt.Sprintf("StatefulSet %s is being created", want.Name)
			continue
		}
		replicas := int32(1)
		if want.Spec.Replicas != nil {
			replicas = *want.Spec.Replicas
		}
		obs.Replicas += replicas
		obs.ReadyReplicas += min(live.Status.ReadyReplicas, replicas)
		switch {
		case live.Status.ObservedGeneration < live.Generation:
			obs.Ready = false
			obs.Reason, obs.Message = ReasonNotReady, fmt.Sprintf("StatefulSet %s has not yet seen its latest spec", want.Name)
		case live.Status.UpdateRevision != "" && live.Status.CurrentRevision != live.Status.UpdateRevision:
			obs.Ready = false
			obs.Reason, obs.Message = ReasonNotReady, fmt.Sprintf("StatefulSet %s is rolling out %d/%d pods updated",
				want.Name, live.Status.UpdatedReplicas, replicas)
		case live.Status.ReadyReplicas < replicas:
			obs.Ready = false
			obs.Reason, obs.Message = ReasonNotReady, fmt.Sprintf("StatefulSet %s has %d/%d replicas ready",
				want.Name, live.Status.ReadyReplicas, replicas)
		}
	}
	return obs, nil
}
