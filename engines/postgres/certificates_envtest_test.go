package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A Secret someone else created under the name of the instance's CA (without Datafleet's label,
// so the operator's cache never sees it) is named in the instance's condition, neither used nor
// overwritten; once it is deleted the instance gets its own CA. Before, creating the CA failed
// with AlreadyExists every second, for ever, with nothing said.
func TestAForeignCASecretIsReportedAndNeverUsed(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{New()}, operator.Options{MaxConcurrentReconciles: 2, AgentImage: managertest.AgentImage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c := context.Background(), env.Client
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "orders-ca", Namespace: "apps"},
		Data: map[string][]byte{"ca.crt": []byte("someone else's"), "ca.key": []byte("someone else's key")}}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, TLS: &v1alpha1.TLSSpec{Enabled: true}}}
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: Name,
			Versions: []v1alpha1.CatalogVersion{{Version: release.Version, Image: release.Image, Default: true}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		foreign, inst,
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	key := types.NamespacedName{Namespace: "apps", Name: "orders"}
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != instance.ReasonForeignObject || !strings.Contains(ready.Message, "Secret apps/orders-ca exists but was not created by Datafleet") {
			return testenv.Errorf("Ready %+v", ready)
		}
		return nil
	})
	mgr.WaitQuiet(t, time.Minute)
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "orders-ca"}, foreign); err != nil || string(foreign.Data["ca.key"]) != "someone else's key" {
		t.Fatalf("the foreign Secret was changed: %v %v", err, foreign.Data)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "orders-tls"}, &corev1.Secret{}); err == nil {
		t.Fatal("a server certificate was issued from the foreign CA")
	}
	if err := c.Delete(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		if inst.Status.TLS == nil || inst.Status.TLS.CAConfigMap != "orders-ca" {
			return testenv.Errorf("status.tls %+v, conditions %+v", inst.Status.TLS, inst.Status.Conditions)
		}
		return nil
	})
}
