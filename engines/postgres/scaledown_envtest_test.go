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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Scaling 3 -> 2 while ledger-2 holds the lease: the framework may not remove ledger-2
// (DrainMember refuses it, not the replicas), and the supervisor asks ledger-2 to step down to
// the first member that stays and streams from it (ledger-1: ledger-0 is still catching up),
// or to spec.primary once it streams. Once the lease moved, ledger-2 may leave.
func TestAScaleDownMovesThePrimaryFirst(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Replicas: ptr.To(int32(2))}}
	key := types.NamespacedName{Namespace: "apps", Name: LeaseName(inst)}
	lease, err := primary.Ensure(ctx, env.Client, key, nil, nil, "ledger-2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := engine.SuperviseInput{Client: env.Client, Instance: inst, Now: time.Now()}
	if err := (Engine{}).DrainMember(ctx, in, "ledger-2"); err == nil || !strings.Contains(err.Error(), "ledger-2 is the primary") {
		t.Fatalf("draining the primary: %v, want a refusal naming it", err)
	}

	pods := make([]corev1.Pod, 3)
	for i := range pods {
		pods[i].Name = "ledger-" + string(rune('0'+i))
	}
	pos := &primary.Position{History: 1, Offset: 100}
	supervise := func(spec v1alpha1.ServiceInstanceSpec) *supervision {
		t.Helper()
		i := inst.DeepCopy()
		i.Spec = spec
		if err := env.Client.Get(ctx, key, lease); err != nil {
			t.Fatal(err)
		}
		s := &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Client: env.Client, Instance: i, Now: time.Now()}, Pods: pods},
			leases: primary.NewObserver(), key: key,
			members: []member{
				{pod: &pods[0], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: pos}},
				{pod: &pods[1], status: &fwagent.Status{Ready: true, Role: RoleReplica, Position: pos}},
				{pod: &pods[2], status: &fwagent.Status{Ready: true, Role: RolePrimary, Position: pos,
					Replicas: []fwagent.ReplicaStatus{{Name: "ledger-0", State: "catchup"}, {Name: "ledger-1", State: "streaming"}}}}}}
		s.read(lease)
		if done, err := s.keepPrimary(ctx); err != nil || !done {
			t.Fatalf("keepPrimary: %v, %v", done, err)
		}
		return s
	}
	// spec.primary names ledger-0, which does not stream yet: wait for it.
	withPrimary := inst.Spec
	withPrimary.Primary = "ledger-0"
	if s := supervise(withPrimary); !strings.Contains(s.NotReady.Message, "waiting for ledger-0 to stream from ledger-2") {
		t.Errorf("a switchover to spec.primary does not wait for it to stream: %s", s.NotReady.Message)
	}
	if err := env.Client.Get(ctx, key, lease); err != nil || primary.Read(lease).StepDown {
		t.Fatalf("the lease %+v (%v): no step-down was due", primary.Read(lease), err)
	}
	// No preference: the first member that stays and streams.
	s := supervise(inst.Spec)
	if err := env.Client.Get(ctx, key, lease); err != nil || primary.Read(lease).StepDownTo != "ledger-1" {
		t.Fatalf("the lease %+v (%v), want ledger-2 asked to step down to ledger-1", primary.Read(lease), err)
	}
	if !strings.Contains(s.NotReady.Message, "scaling down to 2 members: ledger-2 leaves") {
		t.Errorf("the instance does not say why it switches over: %s", s.NotReady.Message)
	}

	// ledger-1 took over: ledger-2 may leave, and nothing more is asked of the supervisor.
	lease.Spec.HolderIdentity = ptr.To("ledger-1")
	delete(lease.Annotations, primary.StepDownAnnotation)
	if err := env.Client.Update(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if err := (Engine{}).DrainMember(ctx, in, "ledger-2"); err != nil {
		t.Fatalf("draining ledger-2 once it is a replica: %v", err)
	}
	s = &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Client: env.Client, Instance: inst, Now: time.Now()}, Pods: pods},
		leases: primary.NewObserver(), key: key}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lease), lease); err != nil {
		t.Fatal(err)
	}
	s.read(lease)
	if done, err := s.keepPrimary(ctx); err != nil || done {
		t.Fatalf("keepPrimary with a primary that stays: %v, %v", done, err)
	}
}
