package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func pod(ns, name, ip string, l map[string]string, ports ...corev1.ContainerPort) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning}}
}

func namespace(name string) corev1.Namespace {
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
}

// The chain for one policy of each kind of peer, checked line by line: what is admitted, what is
// dropped, and that unselected pods are left alone.
func TestRender(t *testing.T) {
	db := map[string]string{"app": "db"}
	w := World{
		Namespaces: []corev1.Namespace{namespace("shop"), namespace("billing"), namespace("other")},
		Pods: []corev1.Pod{
			pod("shop", "db-0", "198.18.0.10", db, corev1.ContainerPort{Name: "postgres", ContainerPort: 5432}, corev1.ContainerPort{Name: "agent", ContainerPort: 8000}),
			pod("shop", "db-1", "198.18.0.11", db, corev1.ContainerPort{Name: "postgres", ContainerPort: 5432}),
			pod("shop", "app", "198.18.0.20", map[string]string{"app": "web"}),
			pod("billing", "app", "198.18.0.21", map[string]string{"app": "web"}),
			pod("other", "app", "198.18.0.22", map[string]string{"app": "web"}),
			pod("datafleet-system", "operator", "198.18.0.30", map[string]string{"role": "operator"}),
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "done", Labels: db}, Status: corev1.PodStatus{PodIP: "198.18.0.40", Phase: corev1.PodSucceeded}},
		},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: db},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: db}}}},
					{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"shop", "billing"}}}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("postgres"))}}},
					{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "datafleet-system"}},
						PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "operator"}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("agent"))}, {Port: ptr.To(intstr.FromInt32(9187)), EndPort: ptr.To(int32(9188))}}},
				},
			},
		}},
	}
	got, warnings := Render(w)
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	// The operator's namespace carries no name label here, as before the API server sets it: it is not selected.
	want := `*filter
:DATAFLEET-NETPOL - [0:0]
-A DATAFLEET-NETPOL -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A DATAFLEET-NETPOL -m addrtype --src-type LOCAL -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.10/32 -d 198.18.0.10/32 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.11/32 -d 198.18.0.10/32 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.10/32 -d 198.18.0.10/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.11/32 -d 198.18.0.10/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.20/32 -d 198.18.0.10/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.21/32 -d 198.18.0.10/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.10/32 -d 198.18.0.11/32 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.11/32 -d 198.18.0.11/32 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.10/32 -d 198.18.0.11/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.11/32 -d 198.18.0.11/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.20/32 -d 198.18.0.11/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -s 198.18.0.21/32 -d 198.18.0.11/32 -p tcp --dport 5432 -j ACCEPT
-A DATAFLEET-NETPOL -d 198.18.0.10/32 -j DROP
-A DATAFLEET-NETPOL -d 198.18.0.11/32 -j DROP
COMMIT
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// With the namespace labelled, the operator reaches the agent port (named, on db-0 only) and the range.
	w.Namespaces = append(w.Namespaces, namespace("datafleet-system"))
	got, _ = Render(w)
	for _, line := range []string{
		"-A DATAFLEET-NETPOL -s 198.18.0.30/32 -d 198.18.0.10/32 -p tcp --dport 8000 -j ACCEPT",
		"-A DATAFLEET-NETPOL -s 198.18.0.30/32 -d 198.18.0.10/32 -p tcp --dport 9187:9188 -j ACCEPT",
		"-A DATAFLEET-NETPOL -s 198.18.0.30/32 -d 198.18.0.11/32 -p tcp --dport 9187:9188 -j ACCEPT",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	if strings.Contains(got, "-d 198.18.0.11/32 -p tcp --dport 8000") {
		t.Error("a named port the pod does not have was opened")
	}

	// Egress and ipBlock exceptions are said, not silently ignored.
	w.Policies[0].Spec.PolicyTypes = append(w.Policies[0].Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	w.Policies[0].Spec.Ingress = append(w.Policies[0].Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "198.18.0.0/24", Except: []string{"198.18.0.22/32"}}}}})
	got2, warnings := Render(w)
	if len(warnings) != 2 {
		t.Errorf("want warnings for egress and for the ipBlock exception, got %v", warnings)
	}
	if got2 != got {
		t.Error("an ipBlock with exceptions admitted something")
	}
}
