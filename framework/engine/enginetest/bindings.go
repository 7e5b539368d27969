package enginetest

import (
	"context"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// CheckTargets asserts which binding targets (databases or vhosts, by the engine's Target) the
// engine's CheckTarget refuses, with an error naming the field and containing the reason given,
// and which it accepts.
func CheckTargets(t *testing.T, users engine.UserManager, refused map[string]string, accepted ...string) {
	t.Helper()
	binding := func(target string) *v1alpha1.ServiceBinding {
		b := &v1alpha1.ServiceBinding{Spec: v1alpha1.ServiceBindingSpec{Role: v1alpha1.RoleReadWrite}}
		if users.Target() == "vhost" {
			b.Spec.Vhost = target
		} else {
			b.Spec.Database = target
		}
		return b
	}
	for target, reason := range refused {
		err := users.CheckTarget(binding(target))
		if err == nil || !strings.HasPrefix(err.Error(), "spec."+users.Target()+": ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s %q: %v, want spec.%s: … %s", users.Target(), target, err, users.Target(), reason)
		}
	}
	for _, target := range accepted {
		if err := users.CheckTarget(binding(target)); err != nil {
			t.Errorf("%s %q refused: %v", users.Target(), target, err)
		}
	}
}

// CheckForeignUsers asserts that the engine's EnsureUser refuses, before it reaches any server,
// user names that are not the binding's own (engine.CheckUser): the operator's administrator,
// the replication user, another binding's user. in has no instance, so an engine that went on
// to its server would fail differently (or panic, which the test reports).
func CheckForeignUsers(t *testing.T, users engine.UserManager, foreign ...string) {
	t.Helper()
	b := &v1alpha1.ServiceBinding{Spec: v1alpha1.ServiceBindingSpec{Role: v1alpha1.RoleReadWrite}}
	b.Namespace, b.Name = "apps", "orders"
	in := engine.UsersInput{Binding: b, Stem: names.UserStem("apps", "orders")}
	for _, user := range append(foreign, names.UserName(names.UserStem("apps", "other"), 0), in.Stem, in.Stem+"_x") {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("EnsureUser of %q went on to the server: %v", user, r)
				}
			}()
			if err := users.EnsureUser(context.Background(), in, user, "password"); err == nil || !strings.Contains(err.Error(), "not one of the binding's users") {
				t.Errorf("EnsureUser of %q: %v", user, err)
			}
		}()
	}
}
