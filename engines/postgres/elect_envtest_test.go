package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// While the last holder may still serve because its members confirm it (failsafe), the operator
// elects only among the confirmers it named: ledger-2 is the most advanced, but ledger-0 never
// asked it, so ledger-1 wins; a holder that named none is not replaced at all; a holder that
// never said (an agent without failsafe) is replaced by the most advanced as before.
func TestElectionKeepsToTheHoldersConfirmers(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15"}}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	pods := make([]corev1.Pod, 3)
	for i := range pods {
		pods[i].Name = "ledger-" + string(rune('0'+i))
	}
	for i, c := range []struct {
		name       string
		confirmers *string
		want       string
	}{
		{"ledger-1 confirms", ptr.To("ledger-1"), "ledger-1"},
		{"nobody confirms", ptr.To(""), "ledger-0"},
		{"never said", nil, "ledger-2"},
	} {
		confirmers := c.confirmers
		key := types.NamespacedName{Namespace: "apps", Name: "ledger-primary-" + string(rune('a'+i))}
		l, err := primary.Ensure(ctx, env.Client, key, nil, nil, "ledger-0", time.Now().Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		l.Annotations = map[string]string{primary.BootstrappedAnnotation: "true"}
		if confirmers != nil {
			l.Annotations[primary.ConfirmersAnnotation] = *confirmers
		}
		if err := env.Client.Update(ctx, l); err != nil {
			t.Fatal(err)
		}
		s := &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Client: env.Client, Instance: inst, Now: time.Now()}, Pods: pods}, key: key,
			members: []member{{pod: &pods[0]},
				{pod: &pods[1], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: &primary.Position{History: 1, Offset: 100}}},
				{pod: &pods[2], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: &primary.Position{History: 1, Offset: 200}}}}}
		s.read(l)
		if _, err := s.elect(ctx); err != nil {
			t.Fatal(err)
		}
		if s.state.Holder != c.want {
			t.Errorf("%s: the lease went to %s, want %s", c.name, s.state.Holder, c.want)
		}
		if c.want == "ledger-0" && !strings.Contains(s.NotReady.Message, "ledger-1, ledger-2 are not among them") {
			t.Errorf("%s: message %q does not say why nobody was elected", c.name, s.NotReady.Message)
		}
	}
}
