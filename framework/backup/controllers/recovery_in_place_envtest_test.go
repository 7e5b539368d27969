package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A physical backup restored in place, on a real API server (the test plays the StatefulSet
// controller and the kubelet; the recovery itself is the agent's, tested with real PostgreSQL and
// on the cluster): the Restore writes the recovery's Secret naming itself, marks the instance
// (its StatefulSet then mounts the Secret), and deletes every pod that ran before, all of them, once
// the StatefulSet mounts it. Pods re-created with the recovery are not deleted again. The restore
// is not done while the instance's Ready is from before the pods restarted; once the instance turned
// Ready after them, it completes, the Secret and the in-place mark go, the bindings are told to
// ensure their users again, and the recovery's mount stays (no second restart).
func TestARestoreOfAPhysicalBackupInPlaceRestartsEveryPod(t *testing.T) {
	ctx, ns := context.Background(), "in-place"
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	c, m := startWithStore(t, ns, cat)
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Version: "1", Replicas: ptr.To[int32](2)}}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(inst)
	managertest.MarkReady(t, c, key)
	waitInstanceReady(t, c, inst)
	pod := func(name string, volumes ...corev1.Volume) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: names.InstanceLabels(fakeengine.Name, "db")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "fake", Image: "fake:1"}}, Volumes: volumes}}
		managertest.RunningPod(t, c, p)
		return p
	}
	old := []*corev1.Pod{pod("db-0"), pod("db-1")}

	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns}, Spec: v1alpha1.BackupSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Method: v1alpha1.BackupPhysical}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	writePhysicalManifest(t, c, m, b, metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second)), nil)
	target := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: "back", Namespace: ns}, Spec: v1alpha1.RestoreSpec{
		BackupRef: v1alpha1.LocalObjectReference{Name: b.Name}, Target: v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "db"}},
		TargetTime: &target}}
	if err := c.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}

	// The Secret names the restore; the instance is marked; its StatefulSet mounts the Secret.
	secret := &corev1.Secret{}
	testenv.Eventually(t, time.Minute, func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: workload.RecoverySecretName(inst)}, secret)
	})
	var cfg backup.RecoveryConfig
	if err := json.Unmarshal(secret.Data[workload.RecoveryConfigKey], &cfg); err != nil || cfg.InPlace != string(rs.UID) ||
		cfg.Backup != controllers.Dir(b) || cfg.Dir != "wal/"+ns+"/db" || cfg.TargetTime != target.UTC().Format(time.RFC3339Nano) {
		t.Fatalf("the in-place recovery's configuration: %+v (%v), want it to name restore %s", cfg, err, rs.UID)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		if inst.Annotations[workload.InPlaceRecoveryAnnotation] != string(rs.UID) || inst.Annotations[workload.RecoveryAnnotation] != b.Name {
			return fmt.Errorf("the instance's annotations: %v", inst.Annotations)
		}
		return nil
	})
	// Every pod that ran before goes, once the StatefulSet (whose controller the test plays) has
	// taken the new template. The test plays it once the template mounts the recovery: played
	// before, on a loaded machine, it left the new template unobserved for good.
	sts := &appsv1.StatefulSet{}
	var recovery corev1.Volume
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, sts); err != nil {
			return err
		}
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == secret.Name {
				recovery = v
				return nil
			}
		}
		return fmt.Errorf("the StatefulSet's pods do not mount the recovery: %+v", sts.Spec.Template.Spec.Volumes)
	})
	managertest.MarkReady(t, c, key)
	for _, p := range old {
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(p), &corev1.Pod{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod %s, which ran before the restore, is still there (%v)", p.Name, err)
			}
			return nil
		})
	}
	waitRestore(t, c, rs, v1alpha1.BackupRunning, controllers.ReasonRunning, "")

	// The pods come back with the recovery. The instance's Ready is still the one from before
	// (the fake engine's readiness is its StatefulSet's): the restore waits for it to turn again.
	restarted := []*corev1.Pod{pod("db-0", recovery), pod("db-1", recovery)}
	waitRestore(t, c, rs, v1alpha1.BackupRunning, controllers.ReasonRunning, `waiting for instance "db" to be Ready with the recovered data`)
	for _, p := range restarted {
		got := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil || got.UID != p.UID {
			t.Fatalf("pod %s, restarted with the recovery, was deleted again (%v)", p.Name, err)
		}
	}
	time.Sleep(time.Second) // Ready turns in a later second than the pods were created (whole seconds)
	setReadyReplicas(t, c, key, 0)
	waitInstanceNotReady(t, c, inst)
	managertest.MarkReady(t, c, key)
	waitRestore(t, c, rs, v1alpha1.BackupCompleted, "Completed", `instance "db" recovered in place from physical backup "base"`)
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), secret); !apierrors.IsNotFound(err) {
		t.Fatalf("the recovery's Secret after the restore: %v", err)
	}
	if err := c.Get(ctx, key, inst); err != nil {
		t.Fatal(err)
	}
	if _, marked := inst.Annotations[workload.InPlaceRecoveryAnnotation]; marked || inst.Annotations[controllers.RestoredAnnotation] != rs.Name ||
		inst.Annotations[workload.RecoveryAnnotation] != b.Name {
		t.Fatalf("the instance's annotations after the restore: %v", inst.Annotations)
	}
}

func waitInstanceReady(t *testing.T, c client.Client, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	waitInstance(t, c, inst, metav1.ConditionTrue)
}

func waitInstanceNotReady(t *testing.T, c client.Client, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	waitInstance(t, c, inst, metav1.ConditionFalse)
}

func waitInstance(t *testing.T, c client.Client, inst *v1alpha1.ServiceInstance, ready metav1.ConditionStatus) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		for _, cond := range inst.Status.Conditions {
			if cond.Type == v1alpha1.ConditionReady && cond.Status == ready {
				return nil
			}
		}
		return fmt.Errorf("instance %s: %+v, want Ready %s", inst.Name, inst.Status.Conditions, ready)
	})
}

// setReadyReplicas writes the StatefulSet's ready count, as its controller would.
func setReadyReplicas(t *testing.T, c client.Client, key client.ObjectKey, n int32) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		sts := &appsv1.StatefulSet{}
		if err := c.Get(context.Background(), key, sts); err != nil {
			return err
		}
		testenv.MarkStatefulSetReady(sts)
		sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = n, n
		return c.Status().Update(context.Background(), sts)
	})
}
