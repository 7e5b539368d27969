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
// it), so the answer tells no namespace what exists in another. The CRD's CEL refuses vhosts
// that are not names, whatever the instance.
func TestWebhookRefusesReservedBindingTargets(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env, fakeengine.NewUsers(nil))
	ctx, c := context.Background(), env.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.UsersName}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.UsersName,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.UsersName}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	bind := func(namespace, name, database string) error {
		return c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db", Namespace: "apps"},
				Role: v1alpha1.RoleReadWrite, Database: database}})
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
	for _, vhost := range []string{".", "..", "a/../b", "a//b"} {
		err := c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "vhost", Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "mq"}, Role: v1alpha1.RoleReadWrite, Vhost: vhost}})
		if err == nil || !strings.Contains(err.Error(), "vhost is not a vhost name") {
			t.Errorf("vhost %q: %v", vhost, err)
		}
	}
}
