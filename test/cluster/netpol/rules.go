package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Chain is the filter-table chain the enforcer owns; FORWARD jumps to it first. Pod-to-pod
// traffic on the node's bridge passes FORWARD because bridge-nf-call-iptables is on (kube-proxy
// needs it too).
const Chain = "DATAFLEET-NETPOL"

// World is what the rules are computed from.
type World struct {
	Policies   []networkingv1.NetworkPolicy
	Pods       []corev1.Pod
	Namespaces []corev1.Namespace
}

// Render returns the iptables-restore input that replaces the chain's rules, and what it could
// not enforce (said, never skipped silently). The rules, in order:
//   - replies and related traffic of an accepted connection pass;
//   - traffic the host itself sends through the bridge (a Service hairpin kube-proxy masqueraded)
//     passes, as with most network plugins: probes and the node are not subject to policies;
//   - for every pod some policy isolates for ingress, each source and port a policy admits is
//     accepted, and everything else to that pod is dropped.
//
// Pods no policy selects are not isolated, as the NetworkPolicy API says. Egress rules and
// ipBlock exceptions are not enforced: a policy that has them gets a warning (and the ipBlock
// rule admits nothing, the safe side).
func Render(w World) (string, []string) {
	var warnings []string
	nsLabels := map[string]labels.Set{}
	for _, ns := range w.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	pods := running(w.Pods)
	type accept struct{ src, dst, port string }
	var accepts []accept
	isolated := map[string]bool{}
	for _, p := range sortedPolicies(w.Policies) {
		if slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(p.Spec.Egress) > 0 {
			warnings = append(warnings, fmt.Sprintf("NetworkPolicy %s/%s: egress rules are not enforced by this local-cluster enforcer", p.Namespace, p.Name))
		}
		if !isIngress(p) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("NetworkPolicy %s/%s: %v (its pods admit nothing)", p.Namespace, p.Name, err))
			sel = labels.Everything()
		}
		for _, dst := range pods {
			if dst.Namespace != p.Namespace || !sel.Matches(labels.Set(dst.Labels)) {
				continue
			}
			isolated[dst.Status.PodIP] = true
			for _, r := range p.Spec.Ingress {
				srcs, warn := sources(p, r.From, pods, nsLabels)
				warnings = append(warnings, warn...)
				for _, port := range portMatches(r.Ports, dst) {
					for _, src := range srcs {
						accepts = append(accepts, accept{src, dst.Status.PodIP, port})
					}
				}
			}
		}
	}
	var b strings.Builder
	b.WriteString("*filter\n:" + Chain + " - [0:0]\n")
	fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", Chain)
	fmt.Fprintf(&b, "-A %s -m addrtype --src-type LOCAL -j ACCEPT\n", Chain)
	seen := map[accept]bool{}
	for _, a := range accepts {
		if seen[a] {
			continue
		}
		seen[a] = true
		rule := "-A " + Chain
		if a.src != "" {
			rule += " -s " + a.src
		}
		rule += " -d " + a.dst + "/32" + a.port + " -j ACCEPT"
		b.WriteString(rule + "\n")
	}
	dsts := make([]string, 0, len(isolated))
	for ip := range isolated {
		dsts = append(dsts, ip)
	}
	slices.Sort(dsts)
	for _, ip := range dsts {
		fmt.Fprintf(&b, "-A %s -d %s/32 -j DROP\n", Chain, ip)
	}
	b.WriteString("COMMIT\n")
	slices.Sort(warnings)
	return b.String(), slices.Compact(warnings)
}

// running are the pods that have an IP of their own (not the host's) and may still send or receive.
func running(all []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range all {
		if p.Spec.HostNetwork || p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if _, err := netip.ParseAddr(p.Status.PodIP); err != nil {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Status.PodIP, b.Status.PodIP) })
	return out
}

func sortedPolicies(ps []networkingv1.NetworkPolicy) []networkingv1.NetworkPolicy {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// isIngress: policyTypes lists Ingress, or is empty (then every policy is an ingress policy).
func isIngress(p networkingv1.NetworkPolicy) bool {
	return len(p.Spec.PolicyTypes) == 0 || slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// sources are the source addresses a rule's peers admit ("" for any source when from is empty).
func sources(p networkingv1.NetworkPolicy, from []networkingv1.NetworkPolicyPeer, pods []corev1.Pod, nsLabels map[string]labels.Set) ([]string, []string) {
	if len(from) == 0 {
		return []string{""}, nil
	}
	var out, warnings []string
	for _, peer := range from {
		if b := peer.IPBlock; b != nil {
			if len(b.Except) > 0 {
				warnings = append(warnings, fmt.Sprintf("NetworkPolicy %s/%s: ipBlock except is not enforced by this local-cluster enforcer; the block admits nothing", p.Namespace, p.Name))
				continue
			}
			if pfx, err := netip.ParsePrefix(b.CIDR); err == nil && pfx.Addr().Is4() {
				out = append(out, pfx.Masked().String())
			}
			continue
		}
		podSel, nsSel := labels.Everything(), labels.Nothing()
		var err error
		if peer.PodSelector != nil {
			if podSel, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
				warnings = append(warnings, fmt.Sprintf("NetworkPolicy %s/%s: %v", p.Namespace, p.Name, err))
				continue
			}
		}
		if peer.NamespaceSelector != nil {
			if nsSel, err = metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
				warnings = append(warnings, fmt.Sprintf("NetworkPolicy %s/%s: %v", p.Namespace, p.Name, err))
				continue
			}
		}
		for _, src := range pods {
			inNamespace := src.Namespace == p.Namespace
			if peer.NamespaceSelector != nil {
				inNamespace = nsSel.Matches(nsLabels[src.Namespace])
			}
			if inNamespace && podSel.Matches(labels.Set(src.Labels)) {
				out = append(out, src.Status.PodIP+"/32")
			}
		}
	}
	return out, warnings
}

// portMatches are the iptables port matches a rule's ports make on the destination pod: one
// empty match for every port, none when only named ports the pod does not have are listed.
func portMatches(ports []networkingv1.NetworkPolicyPort, dst corev1.Pod) []string {
	if len(ports) == 0 {
		return []string{""}
	}
	var out []string
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		m := " -p " + strings.ToLower(string(proto))
		switch {
		case p.Port == nil:
			out = append(out, m)
		case p.Port.StrVal != "":
			if n := namedPort(dst, p.Port.StrVal, proto); n != 0 {
				out = append(out, fmt.Sprintf("%s --dport %d", m, n))
			}
		case p.EndPort != nil:
			out = append(out, fmt.Sprintf("%s --dport %d:%d", m, p.Port.IntVal, *p.EndPort))
		default:
			out = append(out, fmt.Sprintf("%s --dport %d", m, p.Port.IntVal))
		}
	}
	return out
}

func namedPort(pod corev1.Pod, name string, proto corev1.Protocol) int32 {
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				return p.ContainerPort
			}
		}
	}
	return 0
}
