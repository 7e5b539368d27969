package operator_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The manager's cache holds what Datafleet labelled, without the managed fields (a quarter of
// what it held at 1,000 instances, docs/scale.md), and nothing it did not label.
func TestTheCacheHoldsLabelledObjectsWithoutManagedFields(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	labelled := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ours",
		Labels: map[string]string{names.ManagedByLabel: names.ManagedBy}}, Data: map[string]string{"k": "v"}}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "theirs"}}
	for _, cm := range []*corev1.ConfigMap{labelled, other} {
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	live := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(labelled), live); err != nil || len(live.ManagedFields) == 0 {
		t.Fatalf("the API server keeps no managed fields (%v): nothing to strip", err)
	}
	mgr, err := env.Manager([]engine.Engine{fakeengine.New()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	c := mgr.Manager.GetClient()
	got := &corev1.ConfigMap{}
	testenv.Eventually(t, 30*time.Second, func() error { return c.Get(ctx, client.ObjectKeyFromObject(labelled), got) })
	if got.Data["k"] != "v" || len(got.ManagedFields) != 0 {
		t.Fatalf("the cached ConfigMap: data %v, %d managed fields entries; want the data and none", got.Data, len(got.ManagedFields))
	}
	list := &corev1.ConfigMapList{}
	if err := c.List(ctx, list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if cm.Name == other.Name {
			t.Fatal("the cache holds a ConfigMap Datafleet did not label")
		}
	}
}
