package managertest

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// WaitBound waits for the binding to be Ready at its generation (and for also, when given, to
// accept it) and returns its Secret.
func WaitBound(t *testing.T, c client.Client, b *v1alpha1.ServiceBinding, also func(*v1alpha1.ServiceBinding) error) *corev1.Secret {
	t.Helper()
	secret := &corev1.Secret{}
	testenv.Eventually(t, 2*time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != b.Generation || b.Status.Binding == nil {
			return testenv.Errorf("binding status %+v", b.Status)
		}
		if also != nil {
			if err := also(b); err != nil {
				return err
			}
		}
		return c.Get(context.Background(), types.NamespacedName{Namespace: b.Namespace, Name: b.Status.Binding.Name}, secret)
	})
	return secret
}

// WaitRefused waits for the binding's Ready condition to be False with the reason, and a message
// containing message.
func WaitRefused(t *testing.T, c client.Client, b *v1alpha1.ServiceBinding, reason, message string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != reason || !strings.Contains(ready.Message, message) {
			return testenv.Errorf("Ready %+v", ready)
		}
		return nil
	})
}

// UpdateBinding changes the binding's spec, retrying on conflicts with the operator's own writes.
func UpdateBinding(t *testing.T, c client.Client, b *v1alpha1.ServiceBinding, change func(*v1alpha1.ServiceBindingSpec)) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		change(&b.Spec)
		return c.Update(context.Background(), b)
	})
}

// WaitGone waits until o no longer exists.
func WaitGone(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return testenv.Errorf("%T %s still exists (%v)", o, o.GetName(), err)
	})
}
