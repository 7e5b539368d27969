package mongodb

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
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// On a real API server (no pods run): a settled 3-member instance has its generated keyfile and
// password; adding members changes only the wanted-members list, not the pod template (running
// members do not restart); removing members is not refused, as it is for RabbitMQ, but the
// StatefulSet keeps its pods until the primary has taken the leaving members out of the set,
// which needs a primary.
func TestMembersLeaveTheSetBeforeTheirPodsGo(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, Replicas: ptr.To[int32](3)}}
	c := managertest.Settled(t, New(), release, inst, func(inst *v1alpha1.ServiceInstance) error {
		if inst.Status.ObservedGeneration != inst.Generation || meta.IsStatusConditionTrue(inst.Status.Conditions, v1alpha1.ConditionReady) {
			return testenv.Errorf("status %+v", inst.Status)
		}
		return nil
	})
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "apps", Name: "catalog"}
	var secret corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "catalog-mongodb"}, &secret); err != nil ||
		len(secret.Data[mongoagent.KeyfileKey]) < 32 || len(secret.Data[mongoagent.PasswordKey]) < 32 {
		t.Fatalf("the keyfile and password Secret: %v", err)
	}
	var sts appsv1.StatefulSet
	if err := c.Get(ctx, key, &sts); err != nil {
		t.Fatal(err)
	}
	template := sts.Spec.Template
	wanted := func(n int32) func() error {
		return func() error {
			var cm corev1.ConfigMap
			if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "catalog-config"}, &cm); err != nil {
				return err
			}
			if got := strings.Count(cm.Data[mongoagent.MembersFile], "\n"); got != int(n) {
				return testenv.Errorf("%d wanted members, want %d:\n%s", got, n, cm.Data[mongoagent.MembersFile])
			}
			return nil
		}
	}

	managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Replicas = ptr.To[int32](5) })
	testenv.Eventually(t, time.Minute, wanted(5))
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, &sts); err != nil || *sts.Spec.Replicas != 5 {
			return testenv.Errorf("replicas %d, %v", *sts.Spec.Replicas, err)
		}
		return nil
	})
	if sts.Spec.Template.String() != template.String() {
		t.Error("adding members changed the pod template: the running members would restart")
	}

	managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Replicas = ptr.To[int32](3) })
	testenv.Eventually(t, time.Minute, wanted(3))
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.ObservedGeneration != inst.Generation {
			return testenv.Errorf("Ready %+v", ready)
		}
		if ready.Reason == instance.ReasonScaleDownRefused {
			t.Fatalf("a MongoDB scale-down was refused: %s", ready.Message)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a few more reconciles
	if err := c.Get(ctx, key, &sts); err != nil || *sts.Spec.Replicas != 5 {
		t.Fatalf("the StatefulSet shrank before the primary removed its leaving members from the set: %v %d", err, *sts.Spec.Replicas)
	}
}
