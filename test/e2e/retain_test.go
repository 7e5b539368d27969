//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// retainThroughNamespaceDeletion deletes the namespace of a RabbitMQ instance with
// deletionPolicy Retain. The deletion takes the claim and the generated Secrets (the cookie, the
// administrator's password), whatever the instance says; the volume stays Released with its
// data, labelled with the instance. An administrator binds it, as docs/operations.md says, to
// the claim of the instance created again under the same name in the namespace created again:
// the node comes back with its messages, and the operator, whose new Secret's password the old
// data did not know, is not locked out. Deleted with deletionPolicy Delete at last, the instance
// takes the volume with it.
func retainThroughNamespaceDeletion(t *testing.T, inst *v1alpha1.ServiceInstance) {
	ctx := context.Background()
	ns := inst.Namespace
	publishConfirmed(t, amqpURL(t, inst), "kept", 4, amqp.Table{"x-queue-type": "quorum"})
	claim := &corev1.PersistentVolumeClaim{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data-" + inst.Name + "-0"}, claim); err != nil {
		t.Fatal(err)
	}
	volume := claim.Spec.VolumeName
	if err := env.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the namespace is deleted", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})

	pv := &corev1.PersistentVolume{}
	if err := env.c.Get(ctx, client.ObjectKey{Name: volume}, pv); err != nil {
		t.Fatalf("the retained instance's volume did not outlive its namespace: %v", err)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain ||
		pv.Labels[instance.VolumeNamespaceLabel] != ns || pv.Labels[names.InstanceLabel] != inst.Name {
		t.Fatalf("volume %s: reclaim policy %s, labels %v", volume, pv.Spec.PersistentVolumeReclaimPolicy, pv.Labels)
	}
	t.Logf("RABBITMQ: the namespace of a retained instance was deleted; its volume %s stayed, %s", volume, pv.Status.Phase)

	if err := env.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: restricted}}); err != nil {
		t.Fatal(err)
	}
	// The administrator's step: the volume is reserved for the claim the StatefulSet will make.
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: claim.Name}
	if err := env.c.Update(ctx, pv); err != nil {
		t.Fatal(err)
	}
	again := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: inst.Name, Namespace: ns}, Spec: inst.Spec}
	createInstance(t, again)
	waitInstanceReady(t, again)
	if got := consumeAll(t, amqpURL(t, again), "kept"); len(got) != 4 {
		t.Fatalf("created again in the namespace created again, the node has %d of its 4 messages", len(got))
	}
	t.Logf("RABBITMQ: created again over the volume that outlived its namespace, the node was Ready with its 4 messages and new Secrets")

	patchInstance(t, again, func(s *v1alpha1.ServiceInstanceSpec) { s.DeletionPolicy = v1alpha1.DeletionPolicyDelete })
	if err := env.c.Delete(ctx, again); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		err := env.c.Get(ctx, client.ObjectKey{Name: volume}, &corev1.PersistentVolume{})
		return expect(apierrors.IsNotFound(err), "the volume goes with an instance deleted with deletionPolicy Delete", fmt.Sprint(err))
	})
}
