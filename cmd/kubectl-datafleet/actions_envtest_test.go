package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The day-2 commands, run as a user runs them (through run, with a kubeconfig, against a real
// API server), change exactly the spec field they are for, and backup and restore --wait follow
// their object to its end and report a failure with its reason.
func TestDayTwoCommandsChangeTheSpec(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	kubeconfig := writeKubeconfig(t, env)
	kubectl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append(args, "--kubeconfig", kubeconfig, "-n", "shop"), &out)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl datafleet %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	create := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	orders := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Replicas: ptr.To[int32](3)}}
	create(orders)
	get := func(o client.Object) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("pause and resume", func(t *testing.T) {
		must("pause", "orders")
		if get(orders); !orders.Spec.Paused {
			t.Fatal("spec.paused is not set after pause")
		}
		must("resume", "orders")
		raw := &unstructured.Unstructured{}
		raw.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("ServiceInstance"))
		raw.SetNamespace("shop")
		raw.SetName("orders")
		get(raw)
		if _, found, _ := unstructured.NestedFieldNoCopy(raw.Object, "spec", "paused"); found {
			t.Fatalf("spec.paused is still in the spec after resume: %v", raw.Object["spec"])
		}
	})

	t.Run("switchover to a named pod, to the first ready replica, and not to a stranger", func(t *testing.T) {
		labels := names.InstanceLabels("postgres", "orders")
		for i, ready := range []bool{true, false, true} {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("orders-%d", i), Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "pg"}}}}
			if ready {
				managertest.RunningPod(t, c, p)
			} else {
				create(p)
			}
		}
		create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "other-1", Labels: names.InstanceLabels("postgres", "other")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "pg"}}}})
		get(orders)
		orders.Status.CurrentPrimary = "orders-0"
		if err := c.Status().Update(ctx, orders); err != nil {
			t.Fatal(err)
		}
		// orders-1 is not ready: the first ready pod besides the primary is orders-2.
		if out := must("switchover", "orders"); !strings.Contains(out, "switchover to orders-2 requested (the primary is orders-0") {
			t.Fatalf("output: %s", out)
		}
		if get(orders); orders.Spec.Primary != "orders-2" {
			t.Fatalf("spec.primary %q, want orders-2", orders.Spec.Primary)
		}
		must("switchover", "orders", "orders-1")
		if get(orders); orders.Spec.Primary != "orders-1" {
			t.Fatalf("spec.primary %q, want orders-1", orders.Spec.Primary)
		}
		if _, err := kubectl("switchover", "orders", "other-1"); err == nil || !strings.Contains(err.Error(), "pod other-1 is not a pod of serviceinstance shop/orders") {
			t.Fatalf("a switchover to another instance's pod: %v", err)
		}
		if get(orders); orders.Spec.Primary != "orders-1" {
			t.Fatalf("spec.primary %q after a refused switchover, want orders-1 still", orders.Spec.Primary)
		}
	})

	t.Run("rotate raises the generation and keeps the overlap", func(t *testing.T) {
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-app"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "orders"}}}
		create(b)
		must("rotate", "orders-app")
		if get(b); b.Spec.Rotation == nil || b.Spec.Rotation.Generation != 1 {
			t.Fatalf("after one rotation: %+v", b.Spec.Rotation)
		}
		b.Spec.Rotation.Overlap = &metav1.Duration{Duration: 10 * time.Minute}
		if err := c.Update(ctx, b); err != nil {
			t.Fatal(err)
		}
		if out := must("rotate", "orders-app"); !strings.Contains(out, "generation 2 requested") || !strings.Contains(out, "work for 10m0s more") {
			t.Fatalf("output: %s", out)
		}
		if get(b); b.Spec.Rotation.Generation != 2 || b.Spec.Rotation.Overlap.Duration != 10*time.Minute {
			t.Fatalf("after two rotations: %+v", b.Spec.Rotation)
		}
	})

	// finish plays the backup controller: the Backup or Restore named runs, then ends as phase.
	finish := func(o client.Object, phase v1alpha1.BackupPhase, reason, message string) {
		// Not t's helpers: this runs beside the command, and the command's output is the check.
		go func() {
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
					continue
				}
				status := v1alpha1.RunStatus{Phase: phase}
				meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: message})
				switch o := o.(type) {
				case *v1alpha1.Backup:
					o.Status.RunStatus, o.Status.Location, o.Status.SizeBytes = status, "s3://b/shop/orders/nightly", 1234
				case *v1alpha1.Restore:
					o.Status.RunStatus = status
				}
				if c.Status().Update(ctx, o) == nil {
					return
				}
			}
		}()
	}

	t.Run("backup --wait reports the completed backup, and a failure with its reason", func(t *testing.T) {
		finish(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly"}}, v1alpha1.BackupCompleted, "Completed", "done")
		out := must("backup", "orders", "--name", "nightly", "--wait")
		if !strings.Contains(out, "backup shop/nightly created") || !strings.Contains(out, "backup shop/nightly of orders: Completed, 1234 bytes") {
			t.Fatalf("output: %s", out)
		}
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly"}}
		if get(b); b.Spec.InstanceRef.Name != "orders" {
			t.Fatalf("the Backup's instance: %q", b.Spec.InstanceRef.Name)
		}
		finish(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "broken"}}, v1alpha1.BackupFailed, "StoreNotReady", "store minio is not ready")
		if _, err := kubectl("backup", "orders", "--name", "broken", "--wait"); err == nil ||
			!strings.Contains(err.Error(), "backup broken failed (StoreNotReady): store minio is not ready") {
			t.Fatalf("a failed backup with --wait: %v", err)
		}
		// Without a name: the instance's and the time, a new one each run.
		out = must("backup", "orders", "--method", "Physical")
		list := &v1alpha1.BackupList{}
		if err := c.List(ctx, list, client.InNamespace("shop")); err != nil || len(list.Items) != 3 {
			t.Fatalf("Backups: %v, %d of 3 (%s)", err, len(list.Items), out)
		}
	})

	t.Run("restore into a new instance, at a time, on a version", func(t *testing.T) {
		if _, err := kubectl("restore", "nightly"); err == nil || !strings.Contains(err.Error(), "--to names the new instance") {
			t.Fatalf("a restore without --to: %v", err)
		}
		if _, err := kubectl("restore", "nightly", "--to", "orders2", "--time", "yesterday"); err == nil || !strings.Contains(err.Error(), "not an RFC 3339 time") {
			t.Fatalf("a restore --time yesterday: %v", err)
		}
		finish(&v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly-to-orders2"}}, v1alpha1.BackupCompleted, "Completed", "restored")
		out := must("restore", "nightly", "--to", "orders2", "--version", "17", "--time", "2026-12-06T03:00:00Z", "--wait")
		if !strings.Contains(out, "restore nightly-to-orders2: Completed") {
			t.Fatalf("output: %s", out)
		}
		rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly-to-orders2"}}
		get(rs)
		if n := rs.Spec.Target.NewInstance; rs.Spec.BackupRef.Name != "nightly" || n == nil || n.Name != "orders2" || n.Version != "17" ||
			rs.Spec.TargetTime == nil || !rs.Spec.TargetTime.Equal(&metav1.Time{Time: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)}) {
			t.Fatalf("the Restore's spec: %+v", rs.Spec)
		}
	})
}

// writeKubeconfig writes a kubeconfig of a cluster administrator of env's API server.
func writeKubeconfig(t *testing.T, env *testenv.Env) string {
	t.Helper()
	user, err := env.Env.AddUser(envtest.User{Name: "platform", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}
