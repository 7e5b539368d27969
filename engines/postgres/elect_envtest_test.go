package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// unreachable stands in for an API server that does not answer (stopped, or cut off): every read
// fails as a timed-out one does.
type unreachable struct{ client.Reader }

func (unreachable) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return context.DeadlineExceeded
}

// A lease that looks lapsed in the cache while the API server does not answer elects nobody (an
// election sent then would be applied when the API server is back, before the holder could
// renew, replacing a primary its members kept serving). Once it answers, the lease's expiry
// counts from that first look, as for an operator that has just started; a holder that has not
// renewed by then is replaced as before.
func TestNoPrimaryIsElectedWhileTheAPIServerCannotConfirmTheLeaseLapsed(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "default"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15"}}
	key := types.NamespacedName{Namespace: "default", Name: "ledger-primary"}
	renewed := time.Now().Add(-time.Minute)
	l, err := primary.Ensure(ctx, env.Client, key, nil, nil, "ledger-0", renewed)
	if err != nil {
		t.Fatal(err)
	}
	l.Annotations = map[string]string{primary.BootstrappedAnnotation: "true"}
	if err := env.Client.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	pods := make([]corev1.Pod, 2)
	pods[0].Name, pods[1].Name = "ledger-0", "ledger-1"
	observer := primary.NewObserver()
	look := func(reader client.Reader, now time.Time) *supervision {
		s := &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Client: env.Client, APIReader: reader, Instance: inst, Now: now}, Pods: pods},
			key: key, leases: observer, members: []member{{pod: &pods[0]},
				{pod: &pods[1], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: &primary.Position{History: 1, Offset: 100}}}}}
		// What the cache kept: the renewal of a minute ago, seen long enough ago to have lapsed.
		s.read(l)
		if _, err := s.elect(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	holder := func() string {
		live := &coordinationv1.Lease{}
		if err := env.Client.Get(ctx, key, live); err != nil {
			t.Fatal(err)
		}
		return primary.Read(live).Holder
	}
	// The observer has seen this renewal since long before it lapsed.
	observer.Observe(key, primary.Read(l), renewed)

	now := time.Now()
	s := look(unreachable{}, now)
	if got := holder(); got != "ledger-0" || s.NotReady.Reason != "NoPrimary" {
		t.Fatalf("with the API server silent: the lease went to %s (reason %q, %s), want it left to ledger-0", got, s.NotReady.Reason, s.NotReady.Message)
	}
	s = look(env.Client, now.Add(time.Second))
	if got := holder(); got != "ledger-0" {
		t.Fatalf("at the first look with the API server back: the lease went to %s, want ledger-0 given time to renew", got)
	}
	s = look(env.Client, now.Add(time.Second+primary.FenceAfter+3*time.Second))
	if got := holder(); got != "ledger-1" {
		t.Fatalf("a holder that did not renew once the API server was back kept the lease (%s; %s), want ledger-1 elected", got, s.NotReady.Message)
	}
}
