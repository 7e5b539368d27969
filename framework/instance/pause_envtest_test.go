package instance_test

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A paused instance is left alone: a spec change is not applied, a child deleted by hand is not
// put back, and the condition Paused says why. Lifting the pause applies everything at once.
func TestPausedInstanceIsLeftAlone(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "db")
	waitPhase(t, c, ns, "db", v1alpha1.PhaseReady)

	_ = get(t, c, si, ns, "db")
	si.Spec.Paused = true
	si.Spec.Replicas = ptr.To[int32](3)
	si.Spec.Parameters = map[string]string{"extra": "true"}
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, "db"); err != nil {
			return err
		}
		if cond := condition(si, v1alpha1.ConditionPaused); cond.Status != metav1.ConditionTrue || cond.Reason != instance.ReasonPaused {
			return testenv.Errorf("Paused %+v", cond)
		}
		return nil
	})
	if err := c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}); err != nil {
		t.Fatal(err)
	}
	mgr.WaitQuiet(t, time.Minute)
	sts := &appsv1.StatefulSet{}
	if err := get(t, c, sts, ns, "db"); err != nil || *sts.Spec.Replicas != 1 {
		t.Errorf("paused, the StatefulSet changed: replicas %d (%v)", *sts.Spec.Replicas, err)
	}
	if err := get(t, c, &corev1.ConfigMap{}, ns, "db-extra"); !apierrors.IsNotFound(err) {
		t.Errorf("paused, a new child was created: %v", err)
	}
	if err := get(t, c, &corev1.Service{}, ns, "db"); !apierrors.IsNotFound(err) {
		t.Errorf("paused, the deleted Service was put back: %v", err)
	}
	_ = get(t, c, si, ns, "db")
	if si.Status.ObservedGeneration == si.Generation || si.Status.Phase != v1alpha1.PhaseReady {
		t.Errorf("paused: observedGeneration %d of %d, phase %s; want the last observed", si.Status.ObservedGeneration, si.Generation, si.Status.Phase)
	}

	si.Spec.Paused = false
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, sts, ns, "db"); err != nil || *sts.Spec.Replicas != 3 {
			return testenv.Errorf("replicas %v (%v)", sts.Spec.Replicas, err)
		}
		if err := get(t, c, &corev1.ConfigMap{}, ns, "db-extra"); err != nil {
			return err
		}
		if err := get(t, c, &corev1.Service{}, ns, "db"); err != nil {
			return err
		}
		if err := get(t, c, si, ns, "db"); err != nil {
			return err
		}
		if condition(si, v1alpha1.ConditionPaused).Type != "" || si.Status.ObservedGeneration != si.Generation {
			return testenv.Errorf("after the pause: %+v", si.Status)
		}
		return nil
	})
}
