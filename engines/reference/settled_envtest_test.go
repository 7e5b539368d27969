package reference_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/engines/reference"
	refagent "github.com/datafleet-dev/datafleet/engines/reference/agent"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The engine inside the real manager on a real API server (envtest: no StatefulSet controller,
// no pods; the test reports the StatefulSet ready in their place): the supervisor generates the
// password Secret, the instance settles waiting for its server's agent, and then a reconcile
// writes nothing: what Render returns is what the API server stores after defaulting.
func TestSettledInstanceReconcilesWithoutWrites(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: reference.Name, Version: release.Version, Parameters: map[string]string{"maxmemory": "64MB"}}}
	c := managertest.Settled(t, reference.New(), release, inst, func(inst *v1alpha1.ServiceInstance) error {
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if inst.Status.ReadyReplicas != 1 || ready == nil || ready.Reason != "MemberNotReady" || len(inst.Status.Endpoints) != 1 {
			return testenv.Errorf("status %+v", inst.Status)
		}
		return nil
	})
	if e := inst.Status.Endpoints[0]; e.Host != "cache.apps.svc" || e.Port != refagent.Port {
		t.Errorf("endpoint %+v", e)
	}
	var s corev1.Secret
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "apps", Name: "cache-redis"}, &s); err != nil {
		t.Fatal(err)
	}
	if p := string(s.Data[refagent.PasswordKey]); len(p) < 32 || strings.TrimSpace(p) != p {
		t.Fatalf("generated password %q", p)
	}
}
