package mongodb

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// servingEngine is the MongoDB engine with its supervisor replaced (the agent that would run
// FerretDB in the pod is not running here; the test runs FerretDB itself, with the instance's
// administrator password): the instance is serving once its StatefulSet is ready. Users, targets
// and Secrets are the engine's and the framework's own, against a real FerretDB.
type servingEngine struct{ Engine }

func (servingEngine) Supervise(ctx context.Context, s *engine.Supervision) error {
	return enginetest.SuperviseServing(ctx, s, Name, SecretName(s.Instance), mongoagent.KeyfileKey, mongoagent.PasswordKey)
}

// Bindings on FerretDB, driven by the operator's binding controller on a real API server, with
// everything a binding's namespace can write turned against it: MongoDB's own databases are
// refused (by the controller, as a stale object or a disabled webhook would reach it); another
// namespace gets only the role and the databases the instance's policy grants; a Secret edited to
// name the operator's administrator or another binding's user is written back, and neither user's
// password changes. FerretDB has no roles: what a role may do on a real mongod is RolesFor's unit
// test, not this one.
func TestBindingsOnFerretDBReachNoMoreThanGranted(t *testing.T) {
	env := testenv.Start(t)
	ctx, c := context.Background(), env.Client
	var server *testenv.FerretDB
	e := servingEngine{Engine{serverAt: func(*corev1.Pod) string { return server.Addr }}}
	mgr, err := env.ManagerWith([]engine.Engine{e}, operator.Options{MaxConcurrentReconciles: 4, AgentImage: managertest.AgentImage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: ferretdb.Version}}
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: Name,
			Versions: []v1alpha1.CatalogVersion{{Version: ferretdb.Version, Image: ferretdb.Image, Default: true}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		inst,
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// FerretDB starts with the administrator and password the operator generated for the instance.
	adminSecret := &corev1.Secret{}
	testenv.Eventually(t, time.Minute, func() error {
		return c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: SecretName(inst)}, adminSecret)
	})
	adminPassword := string(adminSecret.Data[mongoagent.PasswordKey])
	server = testenv.StartFerretDBAs(t, mongoagent.AdminUser, adminPassword)
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	labels := names.InstanceLabels(Name, inst.Name)
	labels[workload.RoleLabel] = mongoagent.RolePrimary
	managertest.RunningPod(t, c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: workload.PodName(inst, 0), Namespace: "apps", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: Name, Image: ferretdb.Image}}}})

	bind := func(ns, name string, role v1alpha1.BindingRole, database string) *v1alpha1.ServiceBinding {
		t.Helper()
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: inst.Name, Namespace: inst.Namespace},
				Role: role, Database: database}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	logsIn := func(s *corev1.Secret) error {
		return loginTo(ctx, t, server.Addr, string(s.Data["database"]), string(s.Data["username"]), string(s.Data["password"]))
	}
	users := func(db string) []string {
		t.Helper()
		var got []string
		err := withAdmin(ctx, server.Addr, adminPassword, func(s *Server) (err error) {
			got, err = s.Users(ctx, db)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}

	app := bind("apps", "orders", v1alpha1.RoleReadWrite, "app")
	report := bind("apps", "report", v1alpha1.RoleReadOnly, "app")
	appSecret, reportSecret := managertest.WaitBound(t, c, app, nil), managertest.WaitBound(t, c, report, nil)
	for _, s := range []*corev1.Secret{appSecret, reportSecret} {
		if err := logsIn(s); err != nil {
			t.Fatalf("%s cannot log in: %v", s.Data["username"], err)
		}
	}

	t.Run("MongoDB's own databases are refused, and nobody is created in them", func(t *testing.T) {
		for _, db := range ReservedDatabases {
			b := bind("apps", "sys-"+db, v1alpha1.RoleAdmin, db)
			managertest.WaitRefused(t, c, b, binding.ReasonReservedTarget, `database "`+db+`" is reserved`)
		}
		mgr.WaitQuiet(t, time.Minute)
		if got := users("admin"); !slices.Equal(got, []string{mongoagent.AdminUser}) {
			t.Errorf("users defined in admin: %q, want the operator's administrator alone", got)
		}
		for _, db := range []string{"local", "config"} {
			if got := users(db); len(got) != 0 {
				t.Errorf("users defined in %s: %q", db, got)
			}
		}
	})

	t.Run("another namespace gets only the role and the databases the policy grants", func(t *testing.T) {
		policy := func(p *v1alpha1.BindingPolicy) {
			managertest.UpdateSpec(t, c, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.BindingPolicy = p })
		}
		onApp := bind("other", "reader", v1alpha1.RoleReadOnly, "app")
		managertest.WaitRefused(t, c, onApp, binding.ReasonNamespaceNotAllowed, `does not allow bindings from namespace "other"`)
		policy(&v1alpha1.BindingPolicy{Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "other", MaxRole: v1alpha1.RoleReadWrite}}})
		managertest.WaitRefused(t, c, onApp, binding.ReasonTargetNotShared, `database "app" of ServiceInstance apps/docs is not shared`)
		adminOwn := bind("other", "owner", v1alpha1.RoleAdmin, "other_ledger")
		managertest.WaitRefused(t, c, adminOwn, binding.ReasonRoleNotAllowed, `bindings from namespace "other" may have readWrite at most`)
		own := managertest.WaitBound(t, c, bind("other", "writer", v1alpha1.RoleReadWrite, "other_ledger"), nil)
		if err := logsIn(own); err != nil {
			t.Fatalf("a binding on the namespace's own database cannot log in: %v", err)
		}
		policy(&v1alpha1.BindingPolicy{SharedTargets: []string{"app"},
			Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "other", MaxRole: v1alpha1.RoleAdmin}}})
		shared := managertest.WaitBound(t, c, onApp, nil)
		if err := logsIn(shared); err != nil {
			t.Fatalf("a readOnly binding on the shared database cannot log in: %v", err)
		}
		adminShared := bind("other", "takeover", v1alpha1.RoleAdmin, "app")
		managertest.WaitRefused(t, c, adminShared, binding.ReasonRoleNotAllowed, `database "app" is shared`)
		managertest.WaitBound(t, c, adminOwn, nil)

		// Lowered, the policy takes back what it no longer grants: the users go from the server.
		policy(nil)
		managertest.WaitRefused(t, c, onApp, binding.ReasonNamespaceNotAllowed, "")
		managertest.WaitRefused(t, c, adminOwn, binding.ReasonNamespaceNotAllowed, "")
		testenv.Eventually(t, time.Minute, func() error {
			if got, want := users("app"), []string{string(appSecret.Data["username"]), string(reportSecret.Data["username"])}; !slices.Equal(got, sorted(want)) {
				return testenv.Errorf("users of app %q, want the apps namespace's %q", got, want)
			}
			if got := users("other_ledger"); len(got) != 0 {
				return testenv.Errorf("users of other_ledger %q after the revocation", got)
			}
			return nil
		})
	})

	t.Run("a Secret edited to name the administrator or another binding's user reaches neither", func(t *testing.T) {
		want := string(appSecret.Data["username"])
		for _, target := range []string{mongoagent.AdminUser, string(reportSecret.Data["username"])} {
			s := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(appSecret), s); err != nil {
				t.Fatal(err)
			}
			s.Data["username"], s.Data["password"] = []byte(target), []byte("chosen-by-the-tenant")
			if err := c.Update(ctx, s); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, time.Minute, func() error {
				if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
					return err
				}
				if got := string(s.Data["username"]); got != want {
					return testenv.Errorf("the Secret names %q, want %q", got, want)
				}
				return nil
			})
			mgr.WaitQuiet(t, time.Minute)
			if err := loginTo(ctx, t, server.Addr, "admin", mongoagent.AdminUser, adminPassword); err != nil {
				t.Fatalf("after editing the Secret to %s, the administrator cannot log in with its password: %v", target, err)
			}
			if err := loginTo(ctx, t, server.Addr, "admin", mongoagent.AdminUser, "chosen-by-the-tenant"); err == nil {
				t.Fatalf("after editing the Secret to %s, the administrator logs in with the tenant's password", target)
			}
			for _, sec := range []*corev1.Secret{reportSecret, s} {
				if err := logsIn(sec); err != nil {
					t.Fatalf("after editing the Secret to %s, %s cannot log in with its own Secret: %v", target, sec.Data["username"], err)
				}
			}
		}
		if got, want := users("app"), []string{string(appSecret.Data["username"]), string(reportSecret.Data["username"])}; !slices.Equal(got, sorted(want)) {
			t.Errorf("users of app %q, want %q", got, want)
		}
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
