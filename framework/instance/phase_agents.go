package instance

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=patch

// What the operator last heard from a pod's agent, in the pod's annotations: the agent's version
// and binary digest, and the engine container it runs in (a restarted container runs the binary
// its pod started with again).
const (
	AnnotationAgentVersion   = "datafleet.dev/agent-version"
	AnnotationAgentDigest    = "datafleet.dev/agent-digest"
	AnnotationAgentContainer = "datafleet.dev/agent-container"
	// AnnotationAgentSent records a binary sent to the pod's agent, as digest@container, before
	// it is sent: a container that is not the same one afterwards, while its agent does not run
	// that binary, did not survive it.
	AnnotationAgentSent = "datafleet.dev/agent-sent"
)

// ReasonAgentUpgraded is the event of an agent replaced in place.
const ReasonAgentUpgraded = "AgentUpgraded"

// agentPushRequeue is how soon to look at an agent that was sent a new binary: it hands over
// within a second.
const agentPushRequeue = 2 * time.Second

// agentRetry is how soon to ask again an agent that did not answer.
const agentRetry = 15 * time.Second

// upgradeAgents brings every pod's agent to the operator's own binary in place, without
// restarting the database (framework/agent/agentruntime/upgrade.go): a new operator release sends
// its binary to each agent that runs another, one pod of an instance at a time, and the agent
// executes it in its own place. The pod template keeps the agent image its pods started with
// (holdRestarts); what the agents run is in their pods' annotations.
//
// The fleet's rollout paces it as it paces restarts (canaries first, then so many instances at
// once, none while one is not Ready again in time): an instance is done when it is Ready with
// every agent on the operator's binary. A new agent that does not survive (its container
// restarts, with the agent its pod started with) is sent nothing again, nor brought by a restart
// (s.agentsFailed, held by holdRestarts), and its instance is never done for the rollout, which
// stops there. An agent too old to be replaced (s.agentsStuck) gets the new agent with its pod's
// next restart, as a pending restart.
//
// A pod is known to run the operator's binary when its agent said so in the container that runs
// now, or when its agent image is the operator's own and no agent said otherwise: nothing is
// asked of it then, and a settled instance's reconcile asks nothing.
func (r *Reconciler) upgradeAgents(ctx context.Context, s *scope) (bool, error) {
	s.agentsStuck, s.agentsFailed, s.agentsBehind, s.agentsLooked = nil, nil, 0, r.Agent != nil
	if r.Agent == nil {
		return false, nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(s.inst.Namespace), r.selector(s)); err != nil {
		return false, err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	logger := log.FromContext(ctx)
	pushed, waiting := false, false
	for i := range pods.Items {
		pod := &pods.Items[i]
		if r.runsOurAgent(pod) || !agentReachable(pod) {
			continue
		}
		if r.agentDidNotSurvive(pod) {
			// Never done for the rollout either: it stops there, before other instances.
			s.agentsFailed = append(s.agentsFailed, pod.Name)
			s.agentsBehind++
			continue
		}
		conn := s.agents.Pod(pod)
		info, err := conn.Agent(ctx)
		if err != nil {
			logger.Info("asking an agent which binary it runs", "pod", pod.Name, "error", err.Error())
			s.agentsBehind++
			s.requeue(agentRetry)
			continue
		}
		switch {
		case info.Digest == r.Agent.Info.Digest:
			if err := r.recordAgent(ctx, pod, info); err != nil {
				return false, err
			}
			continue
		case !info.Replaceable:
			s.agentsStuck = append(s.agentsStuck, pod.Name)
			continue
		}
		s.agentsBehind++
		s.requeue(agentPushRequeue)
		if pushed || waiting {
			continue // one pod of an instance at a time: the next once this one's agent answers
		}
		if r.Rollout != nil {
			if ok, why := r.Rollout.Admit(client.ObjectKeyFromObject(s.inst), r.now()); !ok {
				logger.V(1).Info("upgrading the agents in place waits for the fleet's rollout", "reason", why)
				s.requeue(r.Rollout.Poll())
				waiting = true
				continue
			}
		}
		pushed = true
		if err := r.pushAgent(ctx, pod, conn); err != nil {
			logger.Info("upgrading an agent in place: trying again", "pod", pod.Name, "error", err.Error())
			s.requeue(agentRetry)
			continue
		}
		r.Recorder.Eventf(s.inst, nil, corev1.EventTypeNormal, ReasonAgentUpgraded, "UpgradeAgent",
			"sent agent %s to pod %s, which runs %s: the agent replaces itself, the database keeps running", r.Agent.Info.Version, pod.Name, describeAgent(info))
	}
	return false, nil
}

// agentDidNotSurvive: the operator's binary was sent to the pod's agent in an earlier container
// than the one that runs now, and that container's agent never said it runs it. (A container
// that restarts later, after its agent said so, runs its pod's first agent again: it is sent the
// binary again.)
func (r *Reconciler) agentDidNotSurvive(pod *corev1.Pod) bool {
	digest, container, ok := strings.Cut(pod.Annotations[AnnotationAgentSent], "@")
	if !ok || digest != r.Agent.Info.Digest || container == agentContainerID(pod) {
		return false
	}
	a := pod.Annotations
	return a[AnnotationAgentDigest] != digest || a[AnnotationAgentContainer] != container
}

// runsOurAgent: the pod's agent said in its current container that it runs the operator's
// binary, or the pod started with the operator's image and no agent said otherwise.
func (r *Reconciler) runsOurAgent(pod *corev1.Pod) bool {
	said, container := pod.Annotations[AnnotationAgentDigest], pod.Annotations[AnnotationAgentContainer]
	if said != "" && container == agentContainerID(pod) {
		return said == r.Agent.Info.Digest
	}
	init := workload.AgentInit(&pod.Spec)
	return init != nil && init.Image == r.AgentImage
}

// agentReachable: the pod runs an agent, with the agent API's certificate (a pod older than
// mutual TLS is replaced by its rolling update instead), and is running.
func agentReachable(pod *corev1.Pod) bool {
	if workload.AgentInit(&pod.Spec) == nil || !pod.DeletionTimestamp.IsZero() || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == fwagent.TLSVolume {
			return agentContainerID(pod) != ""
		}
	}
	return false
}

// agentContainerID is the running engine container's ID (the container whose PID 1 is the
// agent: the pod's first), "" while none runs.
func agentContainerID(pod *corev1.Pod) string {
	if len(pod.Spec.Containers) == 0 {
		return ""
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == pod.Spec.Containers[0].Name && st.State.Running != nil {
			return st.ContainerID
		}
	}
	return ""
}

// recordAgent writes what the pod's agent said into the pod's annotations.
func (r *Reconciler) recordAgent(ctx context.Context, pod *corev1.Pod, info *fwagent.Info) error {
	want := map[string]string{AnnotationAgentVersion: info.Version, AnnotationAgentDigest: info.Digest, AnnotationAgentContainer: agentContainerID(pod)}
	same := true
	for k, v := range want {
		same = same && pod.Annotations[k] == v
	}
	if same {
		return nil
	}
	patch := client.MergeFrom(pod.DeepCopy())
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range want {
		pod.Annotations[k] = v
	}
	return client.IgnoreNotFound(r.Client.Patch(ctx, pod, patch))
}

// pushAgent records on the pod that it sends the operator's binary to its agent, then sends it.
func (r *Reconciler) pushAgent(ctx context.Context, pod *corev1.Pod, conn fwagent.Conn) error {
	sent := r.Agent.Info.Digest + "@" + agentContainerID(pod)
	if pod.Annotations[AnnotationAgentSent] != sent {
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationAgentSent] = sent
		if err := r.Client.Patch(ctx, pod, patch); err != nil {
			return err
		}
	}
	f, err := os.Open(r.Agent.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	return conn.Upgrade(ctx, f, r.Agent.Size, r.Agent.Info.Digest)
}

func describeAgent(info *fwagent.Info) string {
	if info.Digest == "" {
		return "an agent that predates in-place upgrades"
	}
	return fmt.Sprintf("agent %s (%s)", info.Version, info.Digest[:min(12, len(info.Digest))])
}
