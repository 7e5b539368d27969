package instance_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

func TestCreateAppliesChildrenAndStatusProgresses(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}

	// Children appear, labelled and controlled by the instance.
	for _, ch := range fakeChildren("db") {
		obj, name := ch.obj, ch.name
		testenv.Eventually(t, wait, func() error { return get(t, c, obj, ns, name) })
		ref := metav1.GetControllerOf(obj)
		if ref == nil || ref.Name != "db" || ref.Kind != "ServiceInstance" {
			t.Errorf("%T %s: controller reference = %+v", obj, name, ref)
		}
		l := obj.GetLabels()
		if l[names.InstanceLabel] != "db" || l[names.ManagedByLabel] != "datafleet" || l[names.NameLabel] != "fake" {
			t.Errorf("%T %s: labels = %v", obj, name, l)
		}
		if mf := obj.GetManagedFields(); len(mf) == 0 || mf[0].Manager != "datafleet-fake" || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%T %s: not server-side applied by datafleet-fake: %+v", obj, name, mf)
		}
	}

	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseProvisioning)
	if got.Status.Version != "2" || got.Status.Image != "fake:2" {
		t.Errorf("omitted version should resolve to the catalog default 2/fake:2, got %q/%q", got.Status.Version, got.Status.Image)
	}
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration = %d, want %d", got.Status.ObservedGeneration, got.Generation)
	}
	if cond := condition(got, v1alpha1.ConditionReady); cond.Status != metav1.ConditionFalse || cond.ObservedGeneration != got.Generation {
		t.Errorf("Ready condition while provisioning = %+v", cond)
	}
	sts := &appsv1.StatefulSet{}
	_ = get(t, c, sts, ns, "db")
	if img := sts.Spec.Template.Spec.Containers[0].Image; img != "fake:2" {
		t.Errorf("StatefulSet image = %q, want the catalog's fake:2", img)
	}

	markReady(t, c, ns, "db")
	got = waitPhase(t, c, ns, "db", v1alpha1.PhaseReady)
	if cond := condition(got, v1alpha1.ConditionReady); cond.Status != metav1.ConditionTrue || cond.Message != "1/1 replicas ready" {
		t.Errorf("Ready condition = %+v", cond)
	}
	if cond := condition(got, v1alpha1.ConditionVersionSupported); cond.Status != metav1.ConditionTrue {
		t.Errorf("VersionSupported = %+v", cond)
	}
	if got.Status.ReadyReplicas != 1 || !controllerHasFinalizer(got) {
		t.Errorf("readyReplicas = %d, finalizers = %v", got.Status.ReadyReplicas, got.Finalizers)
	}
	events := &corev1.EventList{}
	testenv.Eventually(t, wait, func() error {
		if err := c.List(ctx, events, client.InNamespace(ns)); err != nil {
			return err
		}
		reasons := map[string]bool{}
		for _, e := range events.Items {
			reasons[e.Reason] = true
		}
		if !reasons["Provisioning"] || !reasons["Ready"] {
			return testenv.Errorf("want Provisioning and Ready events, got %v", reasons)
		}
		return nil
	})
}

func controllerHasFinalizer(si *v1alpha1.ServiceInstance) bool {
	for _, f := range si.Finalizers {
		if f == instance.Finalizer {
			return true
		}
	}
	return false
}

func TestSpecChangeUpdatesAndPrunesChildren(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.Parameters = map[string]string{"max_connections": "10", "extra": "true"}
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error { return get(t, c, &corev1.ConfigMap{}, ns, "db-extra") })
	markReady(t, c, ns, "db")
	waitPhase(t, c, ns, "db", v1alpha1.PhaseReady)

	_ = get(t, c, si, ns, "db")
	si.Spec.Replicas = ptr.To[int32](3)
	si.Spec.Parameters = map[string]string{"max_connections": "20"}
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, c, sts, ns, "db"); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 3 {
			return testenv.Errorf("StatefulSet replicas = %d, want 3", *sts.Spec.Replicas)
		}
		cm := &corev1.ConfigMap{}
		if err := get(t, c, cm, ns, "db-config"); err != nil {
			return err
		}
		if cm.Data["fake.conf"] != "max_connections = '20'\n" {
			return testenv.Errorf("config = %q", cm.Data["fake.conf"])
		}
		if err := get(t, c, &corev1.ConfigMap{}, ns, "db-extra"); !apierrors.IsNotFound(err) {
			return testenv.Errorf("db-extra should be pruned once no longer rendered, get = %v", err)
		}
		return nil
	})
	// The StatefulSet has not rolled out the new spec yet: the instance is Updating, not Degraded.
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseUpdating)
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration = %d after applying generation %d", got.Status.ObservedGeneration, got.Generation)
	}
	markReady(t, c, ns, "db")
	got = waitPhase(t, c, ns, "db", v1alpha1.PhaseReady)
	if got.Status.ReadyReplicas != 3 {
		t.Errorf("readyReplicas = %d, want 3", got.Status.ReadyReplicas)
	}
}

func TestChildDeletedByHandIsRecreated(t *testing.T) {
	ctx, c, ns := setup(t)
	if err := c.Create(ctx, newInstance(ns, "db")); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{}
	testenv.Eventually(t, wait, func() error { return get(t, c, svc, ns, "db") })
	oldUID := svc.UID
	if err := c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, svc, ns, "db"); err != nil {
			return err
		}
		if svc.UID == oldUID {
			return testenv.Errorf("Service not yet re-created")
		}
		return nil
	})

	// Drift on a field the engine sets is corrected too.
	cm := &corev1.ConfigMap{}
	_ = get(t, c, cm, ns, "db-config")
	cm.Data["fake.conf"] = "tampered"
	if err := c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, cm, ns, "db-config"); err != nil {
			return err
		}
		if cm.Data["fake.conf"] == "tampered" {
			return testenv.Errorf("drift not corrected")
		}
		return nil
	})
}

func TestDeleteRunsFinalizerAndRemovesChildren(t *testing.T) {
	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyRetain} {
		t.Run(string(policy), func(t *testing.T) {
			ctx, c, ns := setup(t)
			si := newInstance(ns, "db")
			si.Spec.DeletionPolicy = policy
			if err := c.Create(ctx, si); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, wait, func() error { return get(t, c, &appsv1.StatefulSet{}, ns, "db") })
			// The StatefulSet controller would create this volume from the claim template.
			pvc := dataVolume(ns, "data-db-0", "db")
			if err := c.Create(ctx, pvc); err != nil {
				t.Fatal(err)
			}
			// And an engine's Supervise would generate its administrator's password.
			_ = get(t, c, si, ns, "db")
			owner := *metav1.NewControllerRef(si, v1alpha1.GroupVersion.WithKind("ServiceInstance"))
			owner.Controller = nil
			generated := client.ObjectKey{Namespace: ns, Name: "db-admin"}
			if _, err := secrets.EnsureGenerated(ctx, c, generated, names.InstanceLabels("fake", "db"), owner, "password"); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, si); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, wait, func() error {
				if err := get(t, c, &v1alpha1.ServiceInstance{}, ns, "db"); !apierrors.IsNotFound(err) {
					return testenv.Errorf("instance still exists: %v", err)
				}
				return nil
			})
			// envtest runs no garbage collector: the children are gone because the finalizer deleted them.
			for _, ch := range fakeChildren("db") {
				if err := get(t, c, ch.obj, ns, ch.name); !apierrors.IsNotFound(err) {
					t.Errorf("%T %s survived the instance: %v", ch.obj, ch.name, err)
				}
			}
			got := &corev1.PersistentVolumeClaim{}
			err := get(t, c, got, ns, "data-db-0")
			switch policy {
			case v1alpha1.DeletionPolicyDelete:
				// The API server adds the pvc-protection finalizer, which only kube-controller-manager
				// removes: a deleted PVC is one that is gone or has a deletion timestamp.
				if err == nil && got.DeletionTimestamp.IsZero() {
					t.Errorf("deletionPolicy Delete kept the data volume")
				}
			case v1alpha1.DeletionPolicyRetain:
				if err != nil || !got.DeletionTimestamp.IsZero() {
					t.Errorf("deletionPolicy Retain lost the data volume: %v %v", err, got.DeletionTimestamp)
				}
			}
			// The generated Secret goes with the instance (the garbage collector follows its owner
			// reference), unless the volumes stay: then it stays too, for the data's credentials.
			secret := &corev1.Secret{}
			if err := c.Get(ctx, generated, secret); err != nil {
				t.Fatal(err)
			}
			if owned := len(secret.OwnerReferences) > 0; owned != (policy == v1alpha1.DeletionPolicyDelete) {
				t.Errorf("deletionPolicy %s: the generated Secret's owner references are %v", policy, secret.OwnerReferences)
			}
		})
	}
}

func dataVolume(ns, name, inst string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: names.InstanceLabels("fake", inst)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: quantity("1Gi")}},
		},
	}
}

func TestProtectedInstanceStays(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.DeletionProtection = true
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error { return get(t, c, &appsv1.StatefulSet{}, ns, "db") })
	// Its namespace is labelled for the webhook that refuses the namespace's deletion.
	protectedLabel := func(want string) func() error {
		return func() error {
			n := &corev1.Namespace{}
			if err := c.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
				return err
			}
			if got := n.Labels[names.ProtectedLabel]; got != want {
				return testenv.Errorf("namespace label %s=%q, want %q", names.ProtectedLabel, got, want)
			}
			return nil
		}
	}
	testenv.Eventually(t, wait, protectedLabel("true"))
	_ = get(t, c, si, ns, "db")
	if err := c.Delete(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, "db"); err != nil {
			return err
		}
		cond := condition(si, v1alpha1.ConditionDeletionBlocked)
		if cond.Status != metav1.ConditionTrue || cond.Reason != "DeletionProtected" {
			return testenv.Errorf("DeletionBlocked = %+v", cond)
		}
		if !strings.Contains(cond.Message, `"deletionProtection":false`) {
			return testenv.Errorf("the message should say how to lift the protection: %q", cond.Message)
		}
		return nil
	})
	if err := get(t, c, &appsv1.StatefulSet{}, ns, "db"); err != nil {
		t.Fatalf("a protected instance's children must stay: %v", err)
	}

	// Lifting the protection lets the deletion finish.
	si.Spec.DeletionProtection = false
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, "db"); !apierrors.IsNotFound(err) {
			return testenv.Errorf("instance still exists: %v", err)
		}
		return nil
	})
	testenv.Eventually(t, wait, protectedLabel(""))
}

func TestUnknownVersionIsAConditionAndRecoversWhenTheCatalogChanges(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.Version = "9"
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionVersionSupported} {
		cond := condition(got, typ)
		if cond.Status != metav1.ConditionFalse || cond.Reason != "UnknownVersion" ||
			cond.Message != `version "9" is not in the fake VersionCatalog; supported versions: 1, 2` {
			t.Errorf("%s = %+v", typ, cond)
		}
	}
	if err := get(t, c, &appsv1.StatefulSet{}, ns, "db"); !apierrors.IsNotFound(err) {
		t.Errorf("nothing should be rendered for an unknown version: %v", err)
	}

	// The platform team adds version 9: the catalog watch brings the instance back without a retry loop.
	cat := &v1alpha1.VersionCatalog{}
	if err := c.Get(ctx, client.ObjectKey{Name: "fake"}, cat); err != nil {
		t.Fatal(err)
	}
	cat.Spec.Versions = append(cat.Spec.Versions, v1alpha1.CatalogVersion{Version: "9", Image: "fake:9"})
	if err := c.Update(ctx, cat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Get(ctx, client.ObjectKey{Name: "fake"}, cat)
		cat.Spec.Versions = cat.Spec.Versions[:2]
		_ = c.Update(ctx, cat)
	})
	got = waitPhase(t, c, ns, "db", v1alpha1.PhaseProvisioning)
	if got.Status.Image != "fake:9" {
		t.Errorf("image = %q, want fake:9", got.Status.Image)
	}
}

func TestUnknownEngineIsReported(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.Engine = "postgress"
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	cond := condition(got, v1alpha1.ConditionReady)
	if cond.Reason != "UnknownEngine" || cond.Message != `engine "postgress" is not known to this operator; known engines: fake` {
		t.Errorf("Ready = %+v", cond)
	}
}

func TestInvalidParametersAreReported(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.Parameters = map[string]string{"port": "1"}
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	cond := condition(got, v1alpha1.ConditionReady)
	if cond.Reason != "InvalidSpec" || !strings.Contains(cond.Message, `spec.parameters[port]: Forbidden: port is set by the operator`) {
		t.Errorf("Ready = %+v", cond)
	}
}

// An instance whose PriorityClass does not exist (deleted since the webhook admitted it, or
// admitted without the webhook) says so, instead of a StatefulSet whose pods fail to be created.
func TestAMissingPriorityClassIsReported(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	class := "data-" + ns
	si.Spec.Scheduling = &v1alpha1.SchedulingSpec{PriorityClassName: class}
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	if cond := condition(got, v1alpha1.ConditionReady); cond.Reason != "InvalidSpec" ||
		!strings.Contains(cond.Message, `spec.scheduling.priorityClassName: Not found: "PriorityClass \"`+class+`\"`) {
		t.Errorf("Ready = %+v", cond)
	}
	if err := get(t, c, &appsv1.StatefulSet{}, ns, "db"); !apierrors.IsNotFound(err) {
		t.Errorf("a StatefulSet was made for pods that cannot be created (%v)", err)
	}
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Value: 1000}
	if err := c.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, pc) })
	// The instance looks again (every minute); a spec change makes it look now.
	got.Spec.Parameters = map[string]string{"max_connections": "10"}
	if err := c.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, got, ns, "db"); err != nil {
			return err
		}
		return failIf(got.Status.Phase == v1alpha1.PhaseFailed || get(t, c, &appsv1.StatefulSet{}, ns, "db") != nil,
			"with the class there the instance is %s (%+v), its StatefulSet not made", got.Status.Phase, condition(got, v1alpha1.ConditionReady))
	})
}

// An engine that does not serve TLS says so rather than running without the TLS that was asked for.
func TestTLSOnAnEngineWithoutTLSIsReported(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true}
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	if cond := condition(got, v1alpha1.ConditionReady); cond.Reason != "TLSNotSupported" || !strings.HasPrefix(cond.Message, "spec.tls.enabled: the fake engine does not serve TLS") {
		t.Errorf("Ready = %+v", cond)
	}
	if err := get(t, c, &appsv1.StatefulSet{}, ns, "db"); err == nil {
		t.Error("the instance was rendered without the TLS it asked for")
	}
}

// The namespace stays labelled while any of its instances is protected, whichever reconciles last:
// an unprotected instance's reconcile reads the others before it takes the label away.
func TestTheNamespaceStaysProtectedWhileAnyInstanceIs(t *testing.T) {
	ctx, c, ns := setup(t)
	label := func() string {
		n := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
			t.Fatal(err)
		}
		return n.Labels[names.ProtectedLabel]
	}
	kept := newInstance(ns, "kept")
	kept.Spec.DeletionProtection = true
	if err := c.Create(ctx, kept); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "kept")
	waitPhase(t, c, ns, "kept", v1alpha1.PhaseReady)
	if got := label(); got != "true" {
		t.Fatalf("namespace label %q, want true", got)
	}
	// Settled, the protected instance is not reconciled again: the other's reconcile must keep it.
	mgr.WaitQuiet(t, wait)
	if err := c.Create(ctx, newInstance(ns, "free")); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "free")
	waitPhase(t, c, ns, "free", v1alpha1.PhaseReady)
	mgr.WaitQuiet(t, wait)
	if got := label(); got != "true" {
		t.Fatalf("an unprotected instance's reconcile left the namespace label %q while another instance is protected", got)
	}
	_ = get(t, c, kept, ns, "kept")
	kept.Spec.DeletionProtection = false
	if err := c.Update(ctx, kept); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if got := label(); got != "" {
			return testenv.Errorf("namespace label %q with no protected instance, want none", got)
		}
		return nil
	})
}
