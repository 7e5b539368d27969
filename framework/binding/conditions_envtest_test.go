package binding_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Every reason a binding is not Ready, on a real API server: no instance, an instance not ready
// yet, an engine without bindings, a role the engine lacks, a target of another engine, a Secret
// name taken; CEL refuses changing the role. The password is in the Secret only: never in the
// binding's status or in an event.
func TestConditions(t *testing.T) {
	env := testenv.Start(t)
	e := fakeengine.NewUsers(nil)
	mgr, err := env.Manager([]engine.Engine{e, fakeengine.New()}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c := context.Background(), env.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "fakeusers"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "fakeusers",
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "apps"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "apps"}, StringData: map[string]string{"mine": "yes"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	bind := func(name, instance string, role v1alpha1.BindingRole, mutate func(*v1alpha1.ServiceBindingSpec)) *v1alpha1.ServiceBinding {
		t.Helper()
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: instance}, Role: role}}
		if mutate != nil {
			mutate(&b.Spec)
		}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	expect := func(b *v1alpha1.ServiceBinding, status metav1.ConditionStatus, reason, message string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			r := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
			if r == nil || r.Status != status || r.Reason != reason || !strings.Contains(r.Message, message) || r.ObservedGeneration != b.Generation {
				return testenv.Errorf("Ready %+v", r)
			}
			return nil
		})
	}

	early := bind("early", "db", v1alpha1.RoleReadWrite, nil)
	expect(early, metav1.ConditionFalse, binding.ReasonInstanceNotFound, "ServiceInstance apps/db does not exist")
	expect(bind("plain", "plain", v1alpha1.RoleReadWrite, nil), metav1.ConditionFalse, binding.ReasonBindingsNotSupported, "the fake engine does not support bindings")

	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "fakeusers"}}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	expect(early, metav1.ConditionFalse, binding.ReasonInstanceNotReady, "the binding is made once it is Ready")
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	expect(early, metav1.ConditionTrue, binding.ReasonBound, "can connect with the Secret early")

	expect(bind("admin", "db", v1alpha1.RoleAdmin, nil), metav1.ConditionFalse, binding.ReasonRoleNotSupported,
		`does not support role "admin"; it supports [readWrite readOnly]`)
	expect(bind("vhost", "db", v1alpha1.RoleReadWrite, func(s *v1alpha1.ServiceBindingSpec) { s.Vhost = "/" }),
		metav1.ConditionFalse, binding.ReasonInvalidSpec, "spec.vhost applies to RabbitMQ")
	expect(bind("conflict", "db", v1alpha1.RoleReadWrite, func(s *v1alpha1.ServiceBindingSpec) { s.SecretName = "taken" }),
		metav1.ConditionFalse, binding.ReasonSecretConflict, "a Secret named taken exists and does not belong to this binding")
	var taken corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "taken"}, &taken); err != nil || string(taken.Data["mine"]) != "yes" || len(taken.Data) != 1 {
		t.Fatalf("the Secret that was there was changed: %v %v", err, taken.Data)
	}

	early.Spec.Role = v1alpha1.RoleReadOnly
	if err := c.Update(ctx, early); err == nil || !strings.Contains(err.Error(), "role is immutable") {
		t.Fatalf("changing the role: %v", err)
	}

	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "early"}, &secret); err != nil {
		t.Fatal(err)
	}
	password := string(secret.Data["password"])
	stored := e.Password(string(secret.Data["username"]))
	if len(password) < 32 || stored != password || secret.Type != "servicebinding.io/fake" {
		t.Fatalf("the user's password is not the Secret's (%d characters), or type %s", len(password), secret.Type)
	}
	mgr.WaitQuiet(t, time.Minute)
	var events eventsv1.EventList
	if err := c.List(ctx, &events, client.InNamespace("apps")); err != nil {
		t.Fatal(err)
	}
	var bindings v1alpha1.ServiceBindingList
	if err := c.List(ctx, &bindings, client.InNamespace("apps")); err != nil {
		t.Fatal(err)
	}
	for what, o := range map[string]any{"events": events.Items, "bindings": bindings.Items} {
		b, _ := json.Marshal(o)
		if strings.Contains(string(b), password) {
			t.Fatalf("the password appears in %s", what)
		}
	}
}
