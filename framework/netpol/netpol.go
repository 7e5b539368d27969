// Package netpol renders the NetworkPolicy every instance gets: its pods admit their peers on
// every port, applications of the namespaces that may bind on the engine's client ports, and the
// operator and the instance's backup and restore Jobs on the agent's port and the engine's
// operator ports, and the platform's metrics scraper on the agents' metrics port. Nothing else
// reaches them. docs/architecture.md, "network and identities".
package netpol

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// namespaceLabel is set by the API server on every namespace to its name.
const namespaceLabel = "kubernetes.io/metadata.name"

// Operator says which pods are the operator's: the namespace it runs in and its pods' labels;
// and which scrape the agents' metrics, if any.
type Operator struct {
	Namespace string
	Labels    map[string]string
	// Scraper, when set, is admitted on the agents' metrics port (which answers only the scrape
	// token, fwagent.MetricsTokenKey): a Prometheus in its own namespace.
	Scraper *Scraper
}

// Scraper is the pods that scrape the agents: those of Namespace with Labels (all of them when
// Labels is empty).
type Scraper struct {
	Namespace string
	Labels    map[string]string
}

// Input is what the policy is rendered from.
type Input struct {
	Engine   string
	Instance *v1alpha1.ServiceInstance
	Ports    engine.Ports
	Operator Operator
}

// Render returns the instance's NetworkPolicy, named after it. It is a pure function of its input.
func Render(in Input) *networkingv1.NetworkPolicy {
	inst := in.Instance
	own := names.InstanceLabels(in.Engine, inst.Name)
	ingress := []networkingv1.NetworkPolicyIngressRule{
		// Peers: replication, clustering, the failsafe's confirmations, a replica's base backup.
		{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: own}}}},
	}
	if len(in.Ports.Clients) > 0 {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: bindingNamespaces(inst)}},
			Ports: tcp(in.Ports.Clients...),
		})
	}
	ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{
			{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceLabel: in.Operator.Namespace}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: in.Operator.Labels},
			},
			// The instance's backup and restore Jobs run in its namespace, labelled by the operator.
			{PodSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{names.ManagedByLabel: names.ManagedBy, names.EngineLabel: in.Engine},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: names.ComponentLabel, Operator: metav1.LabelSelectorOpIn,
					Values: []string{job.ComponentBackup, job.ComponentRestore}}},
			}},
		},
		Ports: tcp(append([]string{workload.AgentPortName}, in.Ports.Operator...)...),
	})
	if sc := in.Operator.Scraper; sc != nil {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceLabel: sc.Namespace}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: sc.Labels},
			}},
			// By number: the pods declare no metrics port (fwagent.FlagMetricsAddress).
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(fwagent.MetricsPort))}},
		})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: inst.Name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: own},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		},
	}
}

// bindingNamespaces selects the namespaces whose bindings the instance admits (binding.Allowed):
// its own and those its bindingPolicy lists, or every namespace for "*".
func bindingNamespaces(inst *v1alpha1.ServiceInstance) *metav1.LabelSelector {
	nss := []string{inst.Namespace}
	if p := inst.Spec.BindingPolicy; p != nil {
		if slices.Contains(p.AllowedNamespaces, "*") {
			return &metav1.LabelSelector{}
		}
		nss = append(nss, p.AllowedNamespaces...)
		for _, n := range p.Namespaces {
			nss = append(nss, n.Namespace)
		}
	}
	slices.Sort(nss)
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: namespaceLabel, Operator: metav1.LabelSelectorOpIn, Values: slices.Compact(nss)}}}
}

func tcp(ports ...string) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(p))})
	}
	return out
}
