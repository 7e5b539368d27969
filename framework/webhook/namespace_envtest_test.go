package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A namespace that holds an instance with deletion protection cannot be deleted (its PVCs would
// go with it); once protection is off, it can. Other namespaces are deleted as ever.
func TestWebhookKeepsNamespacesOfProtectedInstances(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env)
	ctx, c := context.Background(), env.Client
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "finance"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, DeletionProtection: true}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finance"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scratch"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		inst,
		&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "scratch"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	finance := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finance"}}
	err := c.Delete(ctx, finance)
	if err == nil || !strings.Contains(err.Error(), "it holds ServiceInstances with deletion protection (ledger)") {
		t.Fatalf("deleting a namespace with a protected instance: %v", err)
	}
	if err := c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scratch"}}); err != nil {
		t.Fatalf("deleting a namespace without one: %v", err)
	}
	inst.Spec.DeletionProtection = false
	if err := c.Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error { return c.Delete(ctx, finance) })
}
