package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The ServiceBinding webhook on a real API server: a target the instance's engine reserves is
// refused with the field and the reason; other targets are admitted; and a binding from a
// namespace the instance does not allow is admitted as it is (the controller's condition refuses
// it), so the answer tells no namespace what exists in another. From an allowed namespace, a role
// above its maxRole and a target neither its own nor shared are refused. The CRD's CEL refuses
// vhosts that are not names, whatever the instance.
func TestWebhookRefusesReservedBindingTargets(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env, fakeengine.NewUsers(nil))
	ctx, c := context.Background(), env.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "orders"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.UsersName}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.UsersName,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.UsersName,
			BindingPolicy: &v1alpha1.BindingPolicy{MaxRole: v1alpha1.RoleReadOnly, SharedTargets: []string{"catalog"},
				Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "orders", MaxRole: v1alpha1.RoleAdmin}}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	bindAs := func(role v1alpha1.BindingRole, namespace, name, database string) error {
		return c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db", Namespace: "apps"},
				Role: role, Database: database}})
	}
	bind := func(namespace, name, database string) error {
		return bindAs(v1alpha1.RoleReadWrite, namespace, name, database)
	}
	err := bind("apps", "sys", fakeengine.ReservedDatabase)
	if err == nil || !strings.Contains(err.Error(), `spec.database: Forbidden: database "system" is reserved`) {
		t.Errorf("a binding on the reserved database: %v", err)
	}
	for _, b := range []struct{ namespace, name, database string }{{"apps", "app", "app"}, {"apps", "default", ""}, {"elsewhere", "sys", fakeengine.ReservedDatabase}} {
		if err := bind(b.namespace, b.name, b.database); err != nil {
			t.Errorf("binding %s/%s: %v", b.namespace, b.name, err)
		}
	}
	// The policy: orders may administer its own databases and read and write the shared one; other
	// namespaces (listed or not: the webhook answers for listed ones only) are left to the controller.
	for _, k := range []struct {
		role                      v1alpha1.BindingRole
		namespace, name, database string
		want                      string // "" admits
	}{
		{v1alpha1.RoleAdmin, "orders", "own", "orders_ledger", ""},
		{v1alpha1.RoleReadWrite, "orders", "shared", "catalog", ""},
		{v1alpha1.RoleAdmin, "orders", "shared-admin", "catalog", `spec.role: Forbidden: database "catalog" is shared`},
		{v1alpha1.RoleReadOnly, "orders", "owners", "app", `spec.database: Forbidden: database "app" of ServiceInstance apps/db is not shared`},
		{v1alpha1.RoleAdmin, "orders", "lookalike", "orders-ledger", `spec.database: Forbidden: database "orders-ledger"`},
	} {
		err := bindAs(k.role, k.namespace, k.name, k.database)
		if k.want == "" && err != nil || k.want != "" && (err == nil || !strings.Contains(err.Error(), k.want)) {
			t.Errorf("%s binding from %s on %q: %v, want %q", k.role, k.namespace, k.database, err, k.want)
		}
	}
	// A reference that no instance's name can be is refused by the schema, naming the field (the
	// fuzzer found "%", which the webhook then failed to read with an internal error).
	for _, ref := range []v1alpha1.InstanceReference{{Name: "%"}, {Name: "db", Namespace: "a/b"}, {Name: "Db.x"}} {
		err := c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "ref", Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: ref, Role: v1alpha1.RoleReadWrite}})
		if err == nil || !strings.Contains(err.Error(), "spec.instanceRef.") || !strings.Contains(err.Error(), "should match") {
			t.Errorf("instanceRef %+v: %v", ref, err)
		}
	}
	for _, vhost := range []string{".", "..", "a/../b", "a//b"} {
		err := c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "vhost", Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "mq"}, Role: v1alpha1.RoleReadWrite, Vhost: vhost}})
		if err == nil || !strings.Contains(err.Error(), "vhost is not a vhost name") {
			t.Errorf("vhost %q: %v", vhost, err)
		}
	}
}
