package netpol_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/netpol"
)

var operator = netpol.Operator{Namespace: "datafleet-system", Labels: map[string]string{
	"app.kubernetes.io/name": "datafleet", "app.kubernetes.io/instance": "datafleet", "app.kubernetes.io/component": "manager"}}

// scraped is the operator with a Prometheus in namespace monitoring scraping the agents.
var scraped = netpol.Operator{Namespace: operator.Namespace, Labels: operator.Labels,
	Scraper: &netpol.Scraper{Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}}

func TestRenderGolden(t *testing.T) {
	orders := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17", BindingPolicy: &v1alpha1.BindingPolicy{
			AllowedNamespaces: []string{"reporting", "billing"},
			Namespaces:        []v1alpha1.NamespaceBindingPolicy{{Namespace: "billing"}, {Namespace: "audit"}}}}}
	events := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "shop"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "4.0", BindingPolicy: &v1alpha1.BindingPolicy{AllowedNamespaces: []string{"*"}}}}
	enginetest.GoldenObjects(t, []client.Object{
		netpol.Render(netpol.Input{Engine: "postgres", Instance: orders, Ports: engine.Ports{Clients: []string{"postgres"}}, Operator: operator}),
		netpol.Render(netpol.Input{Engine: "rabbitmq", Instance: events, Operator: scraped,
			Ports: engine.Ports{Clients: []string{"amqp", "management"}, Operator: []string{"management"}}}),
	}, "testdata/policies.golden.yaml")
}

// The policy admits applications from exactly the namespaces whose bindings the instance admits:
// a namespace that may bind but cannot connect is an outage, one that connects without being
// allowed to bind is a hole.
func TestClientNamespacesAreTheBindingNamespaces(t *testing.T) {
	policies := []*v1alpha1.BindingPolicy{
		nil,
		{},
		{AllowedNamespaces: []string{"billing"}},
		{Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "audit", MaxRole: v1alpha1.RoleReadOnly}}},
		{AllowedNamespaces: []string{"billing", "shop"}, Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "billing"}}},
		{AllowedNamespaces: []string{"*"}},
	}
	for _, p := range policies {
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", BindingPolicy: p}}
		np := netpol.Render(netpol.Input{Engine: "postgres", Instance: inst, Ports: engine.Ports{Clients: []string{"postgres"}}, Operator: operator})
		var clients *metav1.LabelSelector
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 1 && r.Ports[0].Port.StrVal == "postgres" {
				clients = r.From[0].NamespaceSelector
			}
		}
		if clients == nil {
			t.Fatalf("policy %+v: no rule opens the client port: %+v", p, np.Spec.Ingress)
		}
		sel, err := metav1.LabelSelectorAsSelector(clients)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"shop", "billing", "audit", "reporting", "kube-system", "datafleet-system"} {
			admitted := sel.Matches(labels.Set{"kubernetes.io/metadata.name": ns})
			if allowed := binding.Allowed(inst, ns); admitted != allowed {
				t.Errorf("policy %+v, namespace %s: the NetworkPolicy admits it: %v, bindings from it are allowed: %v", p, ns, admitted, allowed)
			}
		}
	}
}
