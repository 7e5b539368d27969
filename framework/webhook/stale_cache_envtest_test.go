package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The webhook answers from the API server, not from what its cache has seen so far: `kubectl apply
// -f` of a catalog and an instance of it (or an instance and a binding to it) sends the second a
// few milliseconds after the first, before the watch delivers it. The manager's cache here is made
// to never see the objects (a label selector they do not match), the stalest a cache can be: the
// instance is still admitted, the binding on a reserved database still refused, the namespace of a
// protected instance still kept.
func TestWebhookDoesNotAnswerFromAStaleCache(t *testing.T) {
	env := testenv.Start(t)
	blind := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{"datafleet.test/cached": "yes"})}
	startWebhookWithCache(t, env, cache.Options{ByObject: map[client.Object]cache.ByObject{
		&v1alpha1.VersionCatalog{}: blind, &v1alpha1.ServicePlan{}: blind, &v1alpha1.ServiceInstance{}: blind,
	}}, fakeengine.NewUsers(nil))
	ctx, c := context.Background(), env.Client
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.UsersName, Plan: "small", DeletionProtection: true}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.UsersName}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.UsersName,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}},
		&v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Spec: v1alpha1.ServicePlanSpec{Engine: fakeengine.UsersName,
			Replicas: ptr.To[int32](1), Limits: &v1alpha1.PlanLimits{MaxReplicas: ptr.To[int32](3)}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatalf("an instance whose catalog and plan the cache has not seen: %v", err)
	}
	big := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.UsersName, Plan: "small", Replicas: ptr.To[int32](5)}}
	if err := c.Create(ctx, big); err == nil || !strings.Contains(err.Error(), "spec.replicas") {
		t.Errorf("an instance above its plan's limits: want spec.replicas refused, got %v", err)
	}
	err := c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "sys", Namespace: "apps"},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db"}, Role: v1alpha1.RoleReadWrite,
			Database: fakeengine.ReservedDatabase}})
	if err == nil || !strings.Contains(err.Error(), `database "system" is reserved`) {
		t.Errorf("a binding on a reserved database of an instance the cache has not seen: %v", err)
	}
	err = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})
	if err == nil || !strings.Contains(err.Error(), "deletion protection (db)") {
		t.Errorf("deleting the namespace of a protected instance the cache has not seen: %v", err)
	}
}

// A cache one watch event behind holds the catalog as it was, not nothing: the webhook must decide
// on the catalog as it is now. Here the manager's cache always holds an older catalog (a transform
// rewrites every catalog it caches to version 1 only, still supported), while the API server's
// says that version 1 reached its sundown yesterday and version 2 is the default. A new instance
// on 2 is admitted and one on 1 refused, as the API server's catalog says. (This was the e2e's
// flake: the upgrade test sets the catalog and creates an instance on a sundown version 0.2 s
// later, and the webhook admitted it from its cache.)
func TestWebhookDecidesOnTheCatalogAsItIsNow(t *testing.T) {
	env := testenv.Start(t)
	stale := cache.ByObject{Transform: func(o any) (any, error) {
		if cat, ok := o.(*v1alpha1.VersionCatalog); ok {
			cat.Spec.Versions = []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}
		}
		return o, nil
	}}
	startWebhookWithCache(t, env, cache.Options{ByObject: map[client.Object]cache.ByObject{&v1alpha1.VersionCatalog{}: stale}},
		fakeengine.NewUsers(nil))
	ctx, c := context.Background(), env.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.UsersName}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.UsersName,
			Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Sundown: day(-1)}, {Version: "2", Image: "fake:2", Default: true}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	instance := func(name, version string) *v1alpha1.ServiceInstance {
		return &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.UsersName, Version: version}}
	}
	if err := c.Create(ctx, instance("new", "2")); err != nil {
		t.Errorf("an instance on the catalog's new version, which the cache does not know: %v", err)
	}
	err := c.Create(ctx, instance("old", "1"))
	if err == nil || !strings.Contains(err.Error(), "version 1 reached its sundown") {
		t.Errorf("an instance on a version the catalog has sundowned, which the cache still offers: want it refused, got %v", err)
	}
}
