package postgres

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// The StatefulSet still counts a pod ready for a moment after its container exited (a primary
// that stepped down restarts as a replica): the instance is Ready only when every member's agent
// says its postgres serves. Once seen in e2e: Ready, then psql on the restarting member failed.
func TestReadyWaitsForEveryMembersAgent(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: "15", Replicas: ptr.To(int32(3))}}
	pods := make([]corev1.Pod, 4) // ledger-3 is left over from a scale-down: not a member any more
	for i := range pods {
		pods[i].Name = "ledger-" + string(rune('0'+i))
	}
	pos := &primary.Position{History: 2, Offset: 100}
	supervised := func(statuses ...*fwagent.Status) engine.Observation {
		now := time.Now()
		s := &supervision{
			in: engine.SuperviseInput{Instance: inst, Now: now,
				Generic: engine.Observation{Ready: true, Replicas: 3, ReadyReplicas: 3}},
			state: primary.State{Holder: "ledger-0", RenewTime: now},
			pods:  pods[:len(statuses)],
		}
		for i := range statuses {
			s.members = append(s.members, member{pod: &pods[i], status: statuses[i]})
		}
		return s.result().Observation
	}
	primaryUp := &fwagent.Status{Ready: true, Role: RolePrimary, Position: pos}
	replicaUp := &fwagent.Status{Ready: true, Role: RoleReplica, Position: pos}

	if obs := supervised(primaryUp, replicaUp, replicaUp, nil); !obs.Ready || obs.CurrentPrimary != "ledger-0" {
		t.Fatalf("every member serves: %+v", obs)
	}
	for unready, statuses := range map[string][]*fwagent.Status{
		"ledger-2": {primaryUp, replicaUp, nil},
		"ledger-1": {primaryUp, {Role: RoleReplica, Detail: "the database system is starting up"}, replicaUp},
	} {
		obs := supervised(statuses...)
		if obs.Ready || obs.Reason != "MemberNotReady" || !strings.HasPrefix(obs.Message, unready+"'s agent") {
			t.Errorf("%s is not serving: Ready %v, %s: %s", unready, obs.Ready, obs.Reason, obs.Message)
		}
	}
}
