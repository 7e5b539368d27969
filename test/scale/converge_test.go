// Package scale measures how the framework behaves with many instances on one control plane:
// time to converge, manager heap per instance and API writes per instance. It uses the fake
// engine on a real kube-apiserver (envtest); the harness plays the StatefulSet controller.
//
//	make bench            # 500 instances
//	SCALE_INSTANCES=100 make bench
package scale

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

func BenchmarkConverge(b *testing.B) {
	n := 500
	if v := os.Getenv("SCALE_INSTANCES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for range b.N {
		converge(b, n)
	}
}

func converge(b *testing.B, n int) {
	env := testenv.Start(b)
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name},
		Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name, Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}); err != nil {
		b.Fatal(err)
	}
	ns := "scale"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	mgr, err := env.Manager([]engine.Engine{fakeengine.New()}, 4)
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Stop()

	stop := make(chan struct{})
	go playStatefulSetController(ctx, c, ns, stop)
	defer close(stop)

	start := time.Now()
	three := int32(3)
	for i := range n {
		si := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("si-%04d", i)},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Replicas: &three,
				Parameters: map[string]string{"max_connections": "100"}}}
		if err := c.Create(ctx, si); err != nil {
			b.Fatal(err)
		}
	}
	created := time.Since(start)
	testenv.Eventually(b, 30*time.Minute, func() error {
		list := &v1alpha1.ServiceInstanceList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, si := range list.Items {
			if si.Status.Phase == v1alpha1.PhaseReady && si.Status.ObservedGeneration == si.Generation {
				ready++
			}
		}
		if ready < n {
			time.Sleep(250 * time.Millisecond)
			return fmt.Errorf("%d/%d ready", ready, n)
		}
		return nil
	})
	settled := time.Since(start)
	writes, conflicts := mgr.Writes.Count(), mgr.Writes.Conflicts()

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)

	b.ReportMetric(settled.Seconds(), "s-to-settle")
	b.ReportMetric(created.Seconds(), "s-to-create")
	b.ReportMetric(heap/float64(n)/1024, "KiB-heap/instance")
	b.ReportMetric(float64(writes)/float64(n), "writes/instance")
	b.ReportMetric(float64(conflicts)/float64(n), "conflicts/instance")
	b.Logf("%d instances: settled in %s (creating them took %s), manager heap %.1f KiB/instance, %.1f API writes/instance, of which %.2f refused with 409 Conflict",
		n, settled.Round(time.Millisecond), created.Round(time.Millisecond), heap/float64(n)/1024, float64(writes)/float64(n), float64(conflicts)/float64(n))
}

// playStatefulSetController reports every StatefulSet's replicas ready, as the StatefulSet
// controller and kubelets would on a real cluster. Its writes are not the manager's and are not counted.
func playStatefulSetController(ctx context.Context, c client.Client, ns string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		list := &appsv1.StatefulSetList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err == nil {
			for i := range list.Items {
				sts := &list.Items[i]
				if sts.Status.ObservedGeneration == sts.Generation && sts.Status.ReadyReplicas == *sts.Spec.Replicas {
					continue
				}
				testenv.MarkStatefulSetReady(sts)
				_ = c.Status().Update(ctx, sts)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
