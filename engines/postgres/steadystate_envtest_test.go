package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The rendered StatefulSet, Services and ConfigMap must match what the API server stores after
// defaulting, or every reconcile would write: a settled postgres instance costs no API write.
// (envtest runs no StatefulSet controller and no pods; the test reports the StatefulSet ready in
// their place. With no agent answering, the instance settles waiting for its first primary.)
func TestSettledInstanceReconcilesWithoutWrites(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{New()}, operator.Options{MaxConcurrentReconciles: 2, AgentImage: "datafleet.local/datafleet-operator:test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: Name},
		Spec: v1alpha1.VersionCatalogSpec{Engine: Name, Versions: []v1alpha1.CatalogVersion{{Version: "15", Image: release.Image, Default: true}}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Parameters: map[string]string{"work_mem": "8MB"},
			TLS: &v1alpha1.TLSSpec{Enabled: true}}}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "apps", Name: "orders"}
	testenv.Eventually(t, time.Minute, func() error {
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, key, &sts); err != nil {
			return err
		}
		testenv.MarkStatefulSetReady(&sts)
		return c.Status().Update(ctx, &sts)
	})
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if inst.Status.ReadyReplicas != 1 || ready == nil || !strings.Contains(ready.Message, "waiting for orders-0") {
			return testenv.Errorf("status %+v", inst.Status)
		}
		return nil
	})
	// TLS: the CA is published and named in status; the pods mount the server certificate.
	if inst.Status.TLS == nil || inst.Status.TLS.CAConfigMap != "orders-ca" || inst.Status.TLS.ServerCertificateNotAfter == nil {
		t.Fatalf("status.tls %+v", inst.Status.TLS)
	}
	var ca corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "orders-ca"}, &ca); err != nil || ca.Data["ca.crt"] == "" {
		t.Fatalf("published CA: %v %v", err, ca.Data)
	}
	var sts appsv1.StatefulSet
	if err := c.Get(ctx, key, &sts); err != nil {
		t.Fatal(err)
	}
	if v := sts.Spec.Template.Spec.Volumes; v[len(v)-1].Secret == nil || v[len(v)-1].Secret.SecretName != "orders-tls" {
		t.Errorf("the pods do not mount orders-tls: %+v", v[len(v)-1])
	}
	mgr.WaitQuiet(t, time.Minute)
	before := mgr.Writes.Count()
	r := &instance.Reconciler{Client: mgr.Manager.GetClient(), Scheme: mgr.Manager.GetScheme(), Engine: New(),
		AgentImage: "datafleet.local/datafleet-operator:test", Recorder: mgr.Manager.GetEventRecorder("steady-state-test")}
	for range 5 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	mgr.WaitQuiet(t, time.Minute)
	if n := mgr.Writes.Count() - before; n != 0 {
		t.Fatalf("reconciling a settled postgres instance made %d API writes, want 0", n)
	}
}
