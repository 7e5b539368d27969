package main

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The rollout view against a real API server: the instances with a pending restart (with the
// operator's message) and the paused ones, after a count of the fleet.
func TestRolloutStatusListsPendingAndPausedInstances(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"a", "b"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, si := range []struct {
		ns, name, engine string
		paused           bool
		pending          string
	}{
		{"b", "orders", "postgres", false, "the agent from op:2 comes in this maintenance window, once the fleet's rollout admits them"},
		{"a", "ledger", "postgres", false, ""},
		{"a", "events", "rabbitmq", true, ""},
		{"a", "docs", "mongodb", false, "the agent from op:2 comes with the next restart the spec asks for"},
	} {
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: si.ns, Name: si.name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: si.engine, Paused: si.paused}}
		if err := env.Client.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if si.pending != "" {
			inst.Status.PendingRestarts = []v1alpha1.PendingRestart{{Reason: "AgentUpgrade", Message: si.pending}}
			if err := env.Client.Status().Update(ctx, inst); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, sum, err := Rollout(ctx, env.Client)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintRollout(&out, rows, sum); err != nil {
		t.Fatal(err)
	}
	want := `4 instances: 1 up to date, 2 with a pending restart, 1 paused
NAMESPACE   NAME     ENGINE     STATE     REASON         MESSAGE
a           events   rabbitmq   Paused    Paused         spec.paused: the operator changes nothing until it is false
a           docs     mongodb    Pending   AgentUpgrade   the agent from op:2 comes with the next restart the spec asks for
b           orders   postgres   Pending   AgentUpgrade   the agent from op:2 comes in this maintenance window, once the fleet's rollout admits them
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
