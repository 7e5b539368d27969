package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The rendered StatefulSet, Services and ConfigMap must match what the API server stores after
// defaulting, or every reconcile would write: a settled postgres instance costs no API write.
// (envtest runs no StatefulSet controller and no pods; the test reports the StatefulSet ready in
// their place. With no agent answering, the instance settles waiting for its first primary.)
func TestSettledInstanceReconcilesWithoutWrites(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Parameters: map[string]string{"work_mem": "8MB"},
			TLS: &v1alpha1.TLSSpec{Enabled: true}}}
	c := managertest.Settled(t, New(), release, inst, func(inst *v1alpha1.ServiceInstance) error {
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if inst.Status.ReadyReplicas != 1 || ready == nil || !strings.Contains(ready.Message, "waiting for orders-0") {
			return testenv.Errorf("status %+v", inst.Status)
		}
		return nil
	})
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "apps", Name: "orders"}
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
	if !slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "tls" && v.Secret != nil && v.Secret.SecretName == "orders-tls"
	}) {
		t.Errorf("the pods do not mount orders-tls: %+v", sts.Spec.Template.Spec.Volumes)
	}
}
