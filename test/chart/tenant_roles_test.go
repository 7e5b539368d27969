package chart

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Kubernetes' admin and edit roles get every namespaced Datafleet kind (not its status, not the
// cluster-scoped kinds), the view role reads them, and servicebinding.io runtimes read bindings;
// each can be turned off. The kinds come from the CRDs the chart ships, so that a new one cannot
// be left out.
func TestTenantRoles(t *testing.T) {
	objs := render(t)
	var namespaced, status []string
	for _, u := range byKind(objs, "CustomResourceDefinition") {
		if scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope"); scope == "Namespaced" {
			plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
			namespaced, status = append(namespaced, plural), append(status, plural+"/status")
		}
	}
	if len(namespaced) < 6 {
		t.Fatalf("only %d namespaced CRDs rendered: %v", len(namespaced), namespaced)
	}
	roles := map[string]*unstructured.Unstructured{}
	for _, u := range byKind(objs, "ClusterRole") {
		roles[u.GetName()] = u
	}
	for _, want := range []struct {
		name      string
		aggregate []string
		resources []string
		verbs     []string
	}{
		{"datafleet-edit", []string{"rbac.authorization.k8s.io/aggregate-to-admin", "rbac.authorization.k8s.io/aggregate-to-edit"},
			namespaced, []string{"create", "update", "patch", "delete", "deletecollection"}},
		{"datafleet-view", []string{"rbac.authorization.k8s.io/aggregate-to-admin", "rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-view"},
			append(slices.Clone(namespaced), status...), []string{"get", "list", "watch"}},
		{"datafleet-servicebinding-runtimes", []string{"servicebinding.io/controller"}, []string{"servicebindings"}, []string{"get", "list", "watch"}},
	} {
		u := roles[want.name]
		if u == nil {
			t.Errorf("no ClusterRole %s", want.name)
			continue
		}
		for _, l := range want.aggregate {
			if u.GetLabels()[l] != "true" {
				t.Errorf("%s: label %s is not \"true\": %v", want.name, l, u.GetLabels())
			}
		}
		rules := convert[rbacv1.ClusterRole](t, u).Rules
		if len(rules) != 1 || !slices.Equal(rules[0].APIGroups, []string{"datafleet.dev"}) ||
			!sameSet(rules[0].Resources, want.resources) || !sameSet(rules[0].Verbs, want.verbs) || len(rules[0].ResourceNames) != 0 {
			t.Errorf("%s: rules %+v, want %v on datafleet.dev %v", want.name, rules, want.verbs, want.resources)
		}
	}

	off := render(t, "rbac.aggregateToDefaultRoles=false", "rbac.serviceBindingRuntimes=false")
	for _, u := range byKind(off, "ClusterRole") {
		if slices.Contains([]string{"datafleet-edit", "datafleet-view", "datafleet-servicebinding-runtimes"}, u.GetName()) {
			t.Errorf("%s is rendered with both switches off", u.GetName())
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
