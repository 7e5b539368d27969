package rabbitmq

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
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A settled 3-node instance costs no API writes; lowering its replicas is refused with a message
// and changes nothing; raising them adds nodes to the peer list without touching the pod
// template (the running nodes do not restart).
func TestScaleDownIsRefusedAndScaleUpAddsPeers(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, Replicas: ptr.To[int32](3)}}
	// No node answers in envtest, so the instance settles not Ready.
	c := managertest.Settled(t, New(), release, inst, func(inst *v1alpha1.ServiceInstance) error {
		if ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady); ready == nil || ready.Reason != "ManagementUnavailable" {
			return testenv.Errorf("status %+v", inst.Status)
		}
		return nil
	})
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "apps", Name: "events"}
	var secret corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "events-rabbitmq"}, &secret); err != nil ||
		len(secret.Data[CookieKey]) < 32 || len(secret.Data[PasswordKey]) < 32 {
		t.Fatalf("the cookie and password secret: %v", err)
	}
	var sts appsv1.StatefulSet
	if err := c.Get(ctx, key, &sts); err != nil {
		t.Fatal(err)
	}
	template := sts.Spec.Template

	managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Replicas = ptr.To[int32](1) })
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != instance.ReasonScaleDownRefused || ready.ObservedGeneration != inst.Generation ||
			!strings.Contains(ready.Message, "lowering rabbitmq from 3 to 1 members is refused") ||
			!strings.Contains(ready.Message, "quorum queue") {
			return testenv.Errorf("Ready %+v", ready)
		}
		return nil
	})
	if err := c.Get(ctx, key, &sts); err != nil || *sts.Spec.Replicas != 3 {
		t.Fatalf("the StatefulSet was scaled down: %v %d", err, *sts.Spec.Replicas)
	}

	managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Replicas = ptr.To[int32](5) })
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, &sts); err != nil {
			return err
		}
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "events-config"}, &cm); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 5 || !strings.Contains(cm.Data[peersKey], "nodes.5 = rabbit@events-4.events-pods.apps") {
			return testenv.Errorf("replicas %d, peers %s", *sts.Spec.Replicas, cm.Data[peersKey])
		}
		return nil
	})
	if !equalJSON(t, sts.Spec.Template, template) {
		t.Error("adding nodes changed the pod template: the running nodes would restart")
	}

	// With the opt-in, the StatefulSet keeps its pods until each leaving node is drained, which
	// needs its agent: with no pods here, nothing is removed.
	managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) {
		s.Replicas, s.ScaleDown = ptr.To[int32](3), v1alpha1.ScaleDownDrain
	})
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "events-config"}, &cm); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.ObservedGeneration != inst.Generation || ready.Reason == instance.ReasonScaleDownRefused ||
			strings.Contains(cm.Data[peersKey], "nodes.4") {
			return testenv.Errorf("Ready %+v, peers %s", ready, cm.Data[peersKey])
		}
		return nil
	})
	if err := c.Get(ctx, key, &sts); err != nil || *sts.Spec.Replicas != 5 {
		t.Fatalf("the StatefulSet shrank before its leaving nodes were drained: %v %d", err, *sts.Spec.Replicas)
	}
}
