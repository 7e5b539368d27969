package binding_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// What a binding's namespace can write, on a real API server, with fakeengine.Users (a stand-in
// that keeps users in a map and takes any name it is given, so only the framework's choices are
// under test; the real engines refuse foreign names too, engine.CheckUser): a Secret whose
// username (and previous-username) was edited to another binding's user or to the operator's
// administrator is written back with the binding's own user, and no other user's password
// changes; a target the engine reserves is refused, and a binding that had users loses them; and
// from a namespace the instance does not allow, an instance that exists reads the same as one that
// does not.
func TestTenantWritesReachNoOtherUser(t *testing.T) {
	c, mgr, e := readyUsersInstance(t, map[string]string{"datafleet-operator": "admin-secret"},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}})
	ctx := context.Background()
	bind := func(name, database string) *v1alpha1.ServiceBinding {
		t.Helper()
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db"}, Role: v1alpha1.RoleReadWrite, Database: database}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	until := func(b *v1alpha1.ServiceBinding, reason string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			if r := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady); r == nil || r.Reason != reason {
				return testenv.Errorf("Ready %+v", r)
			}
			return nil
		})
	}
	password := e.Password
	victim, attacker := bind("victim", ""), bind("attacker", "")
	until(victim, binding.ReasonBound)
	until(attacker, binding.ReasonBound)
	victimUser, attackerUser := names.UserName(names.UserStem("apps", "victim"), 0), names.UserName(names.UserStem("apps", "attacker"), 0)
	victimPassword := password(victimUser)
	if victimPassword == "" {
		t.Fatalf("the victim's user %s does not exist", victimUser)
	}

	for _, target := range []string{victimUser, "datafleet-operator"} {
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "attacker"}, &s); err != nil {
			t.Fatal(err)
		}
		s.Data["username"], s.Data["password"] = []byte(target), []byte("chosen-by-the-tenant")
		s.Annotations[binding.AnnotationPreviousUser] = target
		s.Annotations[binding.AnnotationPreviousExpires] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if err := c.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(&s), &s); err != nil {
				return err
			}
			if got := string(s.Data["username"]); got != attackerUser || s.Annotations[binding.AnnotationPreviousUser] != "" {
				return testenv.Errorf("the Secret names user %q, previous %q; want %q and none", got, s.Annotations[binding.AnnotationPreviousUser], attackerUser)
			}
			return nil
		})
		mgr.WaitQuiet(t, time.Minute)
		if got := password(victimUser); got != victimPassword {
			t.Errorf("editing the Secret to %s changed the victim's password", target)
		}
		if got := password("datafleet-operator"); got != "admin-secret" {
			t.Errorf("editing the Secret to %s changed the administrator's password to %q", target, got)
		}
		// The binding's own user takes the password its namespace wrote: it reaches nothing more.
		if got := password(attackerUser); got != "chosen-by-the-tenant" {
			t.Errorf("the attacker's own user has password %q", got)
		}
	}

	reserved := bind("system", fakeengine.ReservedDatabase)
	until(reserved, binding.ReasonReservedTarget)
	if r := meta.FindStatusCondition(reserved.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(r.Message, `spec.database: database "system" is reserved`) {
		t.Errorf("message %q", r.Message)
	}
	mgr.WaitQuiet(t, time.Minute)
	if users := e.Names(); len(users) != 3 {
		t.Errorf("users %v: the reserved binding got one", users)
	}

	messages := map[string]string{}
	for _, instance := range []string{"db", "nothing"} {
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: instance, Namespace: "elsewhere"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: instance, Namespace: "apps"}, Role: v1alpha1.RoleReadWrite}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		until(b, binding.ReasonNamespaceNotAllowed)
		messages[instance] = strings.ReplaceAll(meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady).Message, "apps/"+instance, "apps/X")
	}
	if messages["db"] != messages["nothing"] || strings.Contains(messages["db"], "fake") {
		t.Errorf("another namespace tells an instance that exists from one that does not: %q, %q", messages["db"], messages["nothing"])
	}
}
