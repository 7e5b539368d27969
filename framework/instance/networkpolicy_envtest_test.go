package instance_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Every instance gets its NetworkPolicy, owned by it, following its binding policy; an operator
// started without policies removes the one it finds.
func TestEveryInstanceGetsItsNetworkPolicy(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	np := &networkingv1.NetworkPolicy{}
	clientNamespaces := func() ([]string, error) {
		if err := get(t, c, np, ns, "db"); err != nil {
			return nil, err
		}
		if !maps.Equal(np.Spec.PodSelector.MatchLabels, names.InstanceLabels(fakeengine.Name, "db")) {
			return nil, fmt.Errorf("the policy selects %v, not the instance's pods", np.Spec.PodSelector.MatchLabels)
		}
		if ref := metav1.GetControllerOf(np); ref == nil || ref.UID != si.UID {
			return nil, errors.New("the policy is not controlled by the instance")
		}
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 1 && r.Ports[0].Port.StrVal == "fake" {
				return r.From[0].NamespaceSelector.MatchExpressions[0].Values, nil
			}
		}
		return nil, fmt.Errorf("no rule opens the engine's client port: %+v", np.Spec.Ingress)
	}
	testenv.Eventually(t, wait, func() error {
		got, err := clientNamespaces()
		if err == nil && !slices.Equal(got, []string{ns}) {
			err = fmt.Errorf("clients are admitted from %v, want only the instance's namespace %s", got, ns)
		}
		return err
	})

	// The operator writes the instance too (its status, as the pods come and go): retry on its
	// conflicts (under a loaded machine this Update met one in every full run of the package).
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_ = get(t, c, si, ns, "db")
		si.Spec.BindingPolicy = &v1alpha1.BindingPolicy{AllowedNamespaces: []string{"zz-billing"}}
		return c.Update(ctx, si)
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		got, err := clientNamespaces()
		if err == nil && !slices.Equal(got, []string{ns, "zz-billing"}) {
			err = fmt.Errorf("clients are admitted from %v after the binding policy allowed zz-billing", got)
		}
		return err
	})

	// Turned off: the policy rendered before goes (the running manager, which has policies on,
	// then puts a new one back).
	uid := np.UID
	off := &instance.Reconciler{Client: mgr.Manager.GetClient(), APIReader: mgr.Manager.GetAPIReader(), Scheme: mgr.Manager.GetScheme(),
		Engine: fakeengine.New(), Recorder: mgr.Manager.GetEventRecorder("netpol-off-test")}
	if _, err := off.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "db"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		err := mgr.Manager.GetAPIReader().Get(ctx, types.NamespacedName{Namespace: ns, Name: "db"}, np)
		if err == nil && np.UID == uid {
			return errors.New("an operator without NetworkPolicies left the instance's policy in place")
		}
		return nil
	})
}
