//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testTenantRoles asks the API server's own authorizer (SubjectAccessReview) what Kubernetes'
// roles grant on Datafleet's kinds once the chart's ClusterRoles are aggregated into them by the
// controller-manager: a namespace's editors create instances and restores there (not status,
// not catalogs), its viewers read them, and a servicebinding.io runtime (a ClusterRole that
// aggregates the spec's label) reads bindings in every namespace.
func testTenantRoles(t *testing.T) {
	ctx := context.Background()
	ns := testNamespace(t, "roles")
	for user, role := range map[string]string{"e2e-editor": "edit", "e2e-viewer": "view"} {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
		if err := env.c.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	runtime := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-servicebinding-runtime"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{"servicebinding.io/controller": "true"}}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-servicebinding-runtime"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: runtime.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "e2e-runtime"}}}
	if err := env.c.Create(ctx, runtime); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), runtime) })
	if err := env.c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), binding) })

	for _, c := range []struct {
		user, namespace, verb, resource, subresource string
		allowed                                      bool
	}{
		{"e2e-editor", ns, "create", "serviceinstances", "", true},
		{"e2e-editor", ns, "delete", "servicebindings", "", true},
		{"e2e-editor", ns, "create", "restores", "", true},
		{"e2e-editor", ns, "patch", "backupstores", "", true},
		{"e2e-editor", ns, "update", "serviceinstances", "status", false},
		{"e2e-editor", "default", "create", "serviceinstances", "", false},
		{"e2e-editor", "", "create", "versioncatalogs", "", false},
		{"e2e-viewer", ns, "list", "backups", "", true},
		{"e2e-viewer", ns, "get", "serviceinstances", "status", true},
		{"e2e-viewer", ns, "create", "backups", "", false},
		{"e2e-runtime", "", "list", "servicebindings", "", true},
		{"e2e-runtime", ns, "watch", "servicebindings", "", true},
		{"e2e-runtime", ns, "get", "serviceinstances", "", false},
	} {
		what := fmt.Sprintf("%s may %s datafleet.dev %s", c.user, c.verb, c.resource)
		if c.subresource != "" {
			what += "/" + c.subresource
		}
		if c.namespace != "" {
			what += " in " + c.namespace
		}
		if !c.allowed {
			what = "not: " + what
		}
		// The controller-manager aggregates the rules shortly after the roles appear.
		testenv.Eventually(t, time.Minute, func() error {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: c.user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: c.namespace, Verb: c.verb, Group: "datafleet.dev",
					Resource: c.resource, Subresource: c.subresource}}}
			if err := env.c.Create(ctx, sar); err != nil {
				return err
			}
			return expect(sar.Status.Allowed == c.allowed, what, fmt.Sprintf("%+v", sar.Status))
		})
	}
	t.Logf("RBAC: Kubernetes' edit and view roles grant Datafleet's namespaced kinds in their namespace (not status, not catalogs); servicebinding.io runtimes read bindings")
}
