package enginetest

import (
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
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
