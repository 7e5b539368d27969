package instance

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// observe reads the rendered workloads' status from the cache and lets a Supervisor refine it.
func (r *Reconciler) observe(ctx context.Context, s *scope) (bool, error) {
	obs, live, err := r.observeWorkloads(ctx, s)
	if err != nil {
		return false, err
	}
	if sv, ok := r.Engine.(engine.Supervisor); ok {
		sup, err := r.supervision(ctx, s, obs, live)
		if err != nil {
			return false, err
		}
		if err := sv.Supervise(ctx, sup); err != nil {
			return false, describeErr("supervising instance", err)
		}
		var after time.Duration
		obs, after = sup.Result()
		s.requeue(after)
		// Last, so that an engine's own reason comes first; a pod's creation is an event, so no
		// requeue is needed to see it.
		if pod := workload.MissingMember(s.inst, sup.Pods); obs.Ready && pod != "" {
			obs.Ready, obs.Reason, obs.Message = false, "MemberNotReady", pod+" is not in the operator's cache yet"
		}
	}
	if len(s.releasing) > 0 && obs.Ready {
		// The cache may not show yet the template this reconcile applied: the pods are about to roll.
		obs.Ready, obs.Reason, obs.Message = false, "RollingUpdate", "restarting the pods for "+strings.Join(s.releasing, ", ")+" in the maintenance window"
	}
	if key := client.ObjectKeyFromObject(s.inst); r.Rollout != nil && r.Rollout.Admitted(key) {
		// A restart the rollout admitted is over once the pods run what was applied and serve; the
		// cache may still hold the StatefulSet from before this reconcile applied it.
		applied := false
		for _, o := range s.children {
			if want, ok := o.(*appsv1.StatefulSet); ok && live != nil && want.Name == live.Name {
				if applied, err = sameTemplate(live, want); err != nil {
					return false, err
				}
			}
		}
		// An in-place agent upgrade is done once every agent runs the operator's binary.
		r.Rollout.Observe(key, obs.Ready && applied && s.agentsBehind == 0)
	}
	s.observation = &obs
	return false, nil
}

// supervision prepares a Supervisor's pass: the instance's pods by ordinal, from the cache, and
// its live StatefulSet as observeWorkloads read it.
func (r *Reconciler) supervision(ctx context.Context, s *scope, generic engine.Observation, live *appsv1.StatefulSet) (*engine.Supervision, error) {
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(s.inst.Namespace), r.selector(s)); err != nil {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return workload.Ordinal(pods.Items[i].Name) < workload.Ordinal(pods.Items[j].Name)
	})
	return &engine.Supervision{SuperviseInput: engine.SuperviseInput{Instance: s.inst, Release: s.release, Client: r.Client, APIReader: r.APIReader,
		Children: s.children, Owner: r.ownerRef(s.inst), Now: r.now(), Agents: s.agents},
		Pods: pods.Items, Workload: live, Observation: generic}, nil
}

// observeWorkloads is the generic observation: every rendered StatefulSet has rolled out its
// current revision and all its replicas are ready. It also returns the first rendered
// StatefulSet as it is live (nil while it is being created), which a Supervisor rolls.
func (r *Reconciler) observeWorkloads(ctx context.Context, s *scope) (engine.Observation, *appsv1.StatefulSet, error) {
	obs := engine.Observation{Ready: true}
	var first *appsv1.StatefulSet
	workloads := 0
	for _, o := range s.children {
		want, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		workloads++
		live := &appsv1.StatefulSet{}
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live)
		if err == nil && workloads == 1 {
			first = live
		}
		if err != nil {
			if ignoreGone(err) != nil {
				return obs, nil, err
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
	return obs, first, nil
}
