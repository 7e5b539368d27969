package binding_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// readyUsersInstance starts an API server and the manager with the fake engine that has users
// (existing ones: users there before the operator), and a Ready instance apps/db of it, with the
// objects also created first.
func readyUsersInstance(t *testing.T, existing map[string]string, also ...client.Object) (client.Client, *testenv.Manager, *fakeengine.Users) {
	t.Helper()
	env := testenv.Start(t)
	e := fakeengine.NewUsers(existing)
	mgr, err := env.Manager([]engine.Engine{e}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	c := env.Client
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "fakeusers"}}
	objs := append([]client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "fakeusers"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "fakeusers",
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
	}, also...)
	for _, o := range append(objs, inst) {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	return c, mgr, e
}
