package rabbitmq

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	rmqagent "github.com/datafleet-dev/datafleet/engines/rabbitmq/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// settledPoll is how often a settled cluster is looked at again: a node that leaves the cluster
// while its pod stays ready sends no event.
const settledPoll = time.Minute

var _ engine.Supervisor = Engine{}

// Supervise implements engine.Supervisor. In order: the generated cookie and administrator
// password exist; the cluster is asked which nodes it has; nodes a drained scale-down removed are
// forgotten; then at most one pod of a rolling update is replaced, and only when every node runs
// and the node is not quorum-critical.
func (e Engine) Supervise(ctx context.Context, sup *engine.Supervision) error {
	inst := sup.Instance
	key := types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}
	generated, err := secrets.EnsureGenerated(ctx, sup.Client, key, names.InstanceLabels(Name, inst.Name), sup.Owner, CookieKey, PasswordKey)
	if err != nil {
		return fmt.Errorf("cookie secret: %w", err)
	}
	if generated == nil {
		sup.Wait("SecretPending", fmt.Sprintf("Secret %s was created a moment ago", key.Name), 2*time.Second)
		return nil
	}
	password := string(generated[PasswordKey])
	mgmtTLS, err := managementTLS(ctx, sup.Client, inst)
	if err != nil {
		return err
	}
	s := &supervision{Supervision: sup,
		management: func(p *corev1.Pod) management { return managementAt(p.Status.PodIP, password, mgmtTLS) }}
	s.observeCluster(ctx)
	if err := s.forgetDeparted(ctx); err != nil {
		return err
	}
	if _, err := s.roll(ctx); err != nil {
		return err
	}
	s.report()
	return nil
}

// DrainMember implements engine.ScaleDownGuard: a node that stays removes the leaving node's
// replicas from every quorum queue (rabbitmq-queues shrink); the other members keep serving them.
// It works whether the leaving node still runs or not.
func (Engine) DrainMember(ctx context.Context, in engine.SuperviseInput, pod string) error {
	inst := in.Instance
	pods := &corev1.PodList{}
	if err := in.Client.List(ctx, pods, client.InNamespace(inst.Namespace), client.MatchingLabels(names.InstanceLabels(Name, inst.Name))); err != nil {
		return err
	}
	p := stayingNode(pods.Items, int(inst.DesiredReplicas()))
	if p == nil {
		return fmt.Errorf("no node that stays is ready to drain %s", pod)
	}
	node := url.Values{"node": {NodeName(inst, workload.Ordinal(pod))}}
	return in.Agents.Pod(p).Act(ctx, rmqagent.ActionShrink, node)
}

// stayingNode is a ready pod among the first stay ordinals, whose agent acts on nodes that
// leave; nil if none is ready.
func stayingNode(pods []corev1.Pod, stay int) *corev1.Pod {
	for i := range pods {
		if workload.Ordinal(pods[i].Name) < stay && workload.PodReady(&pods[i]) {
			return &pods[i]
		}
	}
	return nil
}

// adminPassword is the operator's administrator password, from the instance's generated Secret.
func adminPassword(ctx context.Context, c client.Reader, inst *v1alpha1.ServiceInstance) (string, error) {
	return secrets.Value(ctx, c, types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}, PasswordKey)
}

// forgetDeparted removes from the cluster the stopped nodes a drained scale-down took away (their
// ordinals are beyond the StatefulSet's replicas), asking a running node's agent.
func (s *supervision) forgetDeparted(ctx context.Context) error {
	inst, live := s.Instance, s.Workload
	if live == nil || inst.Spec.ScaleDown != v1alpha1.ScaleDownDrain {
		return nil
	}
	if *live.Spec.Replicas > inst.DesiredReplicas() {
		s.Wait("ScalingDown", fmt.Sprintf("draining the nodes above %d before they are removed", inst.DesiredReplicas()), 2*time.Second)
		return nil
	}
	for name, n := range s.cluster {
		ord := nodeOrdinal(inst, name)
		if n.Running || ord < int(*live.Spec.Replicas) {
			continue
		}
		p := stayingNode(s.Pods, int(*live.Spec.Replicas))
		if p == nil {
			continue
		}
		if err := s.Agents.Pod(p).Act(ctx, rmqagent.ActionForget, url.Values{"node": {name}}); err != nil {
			s.Wait("ScalingDown", fmt.Sprintf("removing %s from the cluster: %v", name, err), 5*time.Second)
			return nil
		}
		log.FromContext(ctx).Info("removed a departed node from the cluster", "node", name)
		delete(s.cluster, name)
	}
	return nil
}

// nodeOrdinal is the ordinal of the instance's pod a node name names, or -1.
func nodeOrdinal(inst *v1alpha1.ServiceInstance, node string) int {
	host, ok := strings.CutPrefix(node, "rabbit@")
	pod, rest, _ := strings.Cut(host, ".")
	if !ok || rest != workload.HeadlessName(inst)+"."+inst.Namespace {
		return -1
	}
	return workload.Ordinal(pod)
}

type supervision struct {
	*engine.Supervision
	// management reaches a pod's node's management API.
	management func(*corev1.Pod) management
	// cluster is the cluster's nodes by name, as a ready node sees them (nil: no node answered).
	cluster map[string]clusterNode
	// missing are the desired nodes that are not running in the cluster.
	missing []string
}

// observeCluster asks the first ready node for the cluster's nodes and finds the desired nodes
// that do not run in it.
func (s *supervision) observeCluster(ctx context.Context) {
	inst := s.Instance
	var failed string
	for i := range s.Pods {
		p := &s.Pods[i]
		if !workload.PodReady(p) || p.Status.PodIP == "" {
			continue
		}
		nodes, err := s.management(p).nodes(ctx)
		if err != nil {
			failed = fmt.Sprintf("asking %s for the cluster's nodes: %v", p.Name, err)
			continue
		}
		s.cluster = map[string]clusterNode{}
		for _, n := range nodes {
			s.cluster[n.Name] = n
		}
		break
	}
	if s.cluster == nil {
		if failed != "" {
			s.Wait("ManagementUnavailable", failed, 5*time.Second)
		}
		return
	}
	for i := range int(inst.DesiredReplicas()) {
		if n := NodeName(inst, i); !s.cluster[n].Running {
			s.missing = append(s.missing, workload.PodName(inst, i))
		}
	}
	if len(s.missing) > 0 {
		s.Wait("Clustering", fmt.Sprintf("waiting for %s to run in the cluster", strings.Join(s.missing, ", ")), 2*time.Second)
	}
}

// roll replaces pods that run an outdated revision, highest ordinal first, one at a time: only
// when every pod is ready, every node runs in the cluster, and the cluster says stopping the
// node leaves every quorum queue with a majority of its members online.
func (s *supervision) roll(ctx context.Context) (bool, error) {
	return s.Roll(ctx, engine.Roll{
		Held:    s.cluster == nil || len(s.missing) > 0,
		Waiting: "every node to run in the cluster",
		Before: func(ctx context.Context, victim *corev1.Pod, outdated []*corev1.Pod) (bool, error) {
			why, err := s.management(victim).quorumCritical(ctx)
			switch {
			case err != nil:
				s.Wait("RollingUpdate", fmt.Sprintf("asking %s whether it is quorum-critical: %v", victim.Name, err), 5*time.Second)
				return false, nil
			case why != "":
				s.Wait("RollingUpdate", fmt.Sprintf("%d pods to update; %s is quorum-critical: %s", len(outdated), victim.Name, why), 5*time.Second)
				return false, nil
			}
			return true, nil
		},
	})
}

// report completes the observation with the nodes and endpoints.
func (s *supervision) report() {
	inst := s.Instance
	obs := &s.Observation
	for _, p := range s.Pods {
		m := v1alpha1.Member{Name: p.Name, Role: "node", State: "not in the cluster"}
		switch n, ok := s.cluster[NodeName(inst, workload.Ordinal(p.Name))]; {
		case s.cluster == nil:
			m.State = "unknown"
		case ok && n.Running:
			m.State = "running"
		case ok:
			m.State = "stopped"
		}
		obs.Members = append(obs.Members, m)
	}
	host := names.ServiceHost(workload.ServiceName(inst), inst.Namespace)
	obs.Endpoints = []v1alpha1.Endpoint{{Name: "amqp", Host: host, Port: amqpPort}, {Name: "management", Host: host, Port: managementPort}}
	if inst.TLSEnabled() {
		obs.Endpoints = append(obs.Endpoints, v1alpha1.Endpoint{Name: "amqps", Host: host, Port: amqpsPort},
			v1alpha1.Endpoint{Name: "management-tls", Host: host, Port: managementTLSPort})
	}
	if s.cluster == nil {
		s.Unready("ManagementUnavailable", "no node answered on the management API")
	}
	s.Poll = settledPoll
}
