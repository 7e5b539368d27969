package rabbitmq

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
)

var (
	release    = catalog.Release{Version: "4.0", Image: "datafleet.local/rabbitmq:4.0"}
	release310 = catalog.Release{Version: "3.10", Image: "datafleet.local/rabbitmq:3.10"}
)

const agentImage = "datafleet.local/datafleet-operator:test"

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{
		Engine: New(), Release: release, AgentImage: agentImage,
		Instances: []*v1alpha1.ServiceInstance{enginetest.Instance(Name, "one", 1), enginetest.Instance(Name, "three", 3)},
	})
}

func TestGolden(t *testing.T) {
	inst := enginetest.Instance(Name, "events", 3)
	inst.Spec.Parameters = map[string]string{"heartbeat": "30", "cluster_partition_handling": "autoheal"}
	inst.Spec.Storage = &v1alpha1.StorageSpec{Size: resource.MustParse("5Gi")}
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true}
	enginetest.Golden(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: agentImage},
		"testdata/events.golden.yaml")
}

// spec.tls.required: no plain listener in the configuration, the pod or the Service.
func TestGoldenTLSRequired(t *testing.T) {
	inst := enginetest.Instance(Name, "events", 1)
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true, Required: true}
	enginetest.Golden(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: agentImage},
		"testdata/events-tls-required.golden.yaml")
}

func TestValidateNamesTheField(t *testing.T) {
	inst := enginetest.Instance(Name, "events", 4)
	inst.Spec.Parameters = map[string]string{
		"listeners.tcp.default": "5673", "ssl_options.verify": "verify_peer", "default_pass": "x",
		"heartbeat": "often", "vm_memory_high_watermark.relative": "NaN", "hipe_compile": "true",
		"channel_max": "2047",
	}
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true, Required: true}
	enginetest.ExpectErrors(t, New().Validate(inst, release),
		`spec.parameters[default_pass]: Forbidden: default_pass is set by the operator: the operator's own administrator`,
		`spec.parameters[heartbeat]: Invalid value: "often": must be an integer`,
		`spec.parameters[hipe_compile]: Unsupported value: "hipe_compile": supported values:`,
		`spec.parameters[listeners.tcp.default]: Forbidden: listeners.tcp.default is set by the operator: the operator sets the AMQP listeners`,
		`spec.parameters[ssl_options.verify]: Forbidden: ssl_options.verify is set by the operator: use spec.tls`,
		`spec.parameters[vm_memory_high_watermark.relative]: Invalid value: "NaN": must be a non-negative decimal number`,
		`spec.replicas: Invalid value: 4: must be odd`,
	)
}

// Every parameter is read at start only, so each must change the pod template (the supervisor
// then rolls the nodes); the peer list must not, or adding a node would restart the others.
func TestParametersRollTheNodesAndPeersDoNot(t *testing.T) {
	template := func(replicas int32, params map[string]string) string {
		inst := enginetest.Instance(Name, "events", replicas)
		inst.Spec.Parameters = params
		return enginetest.PodTemplate(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: agentImage})
	}
	base := template(3, map[string]string{"heartbeat": "30"})
	if template(3, map[string]string{"heartbeat": "60"}) == base {
		t.Error("changing heartbeat left the pod template as it was")
	}
	if template(5, map[string]string{"heartbeat": "30"}) != base {
		t.Error("adding nodes changed the pod template")
	}
}

// 3.10 has no node-wide default queue type; from 3.13 rabbitmq.conf sets quorum for every vhost.
func TestQuorumQueuesByDefaultWhereTheReleaseReadsIt(t *testing.T) {
	inst := enginetest.Instance(Name, "events", 3)
	if c := config(inst, release); !strings.Contains(c, "default_queue_type = quorum\n") {
		t.Errorf("4.0 configuration lacks default_queue_type = quorum:\n%s", c)
	}
	if c := config(inst, release310); strings.Contains(c, "default_queue_type") {
		t.Errorf("3.10 would refuse default_queue_type:\n%s", c)
	}
}

func TestPeersNameEveryNode(t *testing.T) {
	inst := enginetest.Instance(Name, "events", 3)
	inst.Namespace = "apps"
	want := "cluster_formation.classic_config.nodes.1 = rabbit@events-0.events-pods.apps\n" +
		"cluster_formation.classic_config.nodes.2 = rabbit@events-1.events-pods.apps\n" +
		"cluster_formation.classic_config.nodes.3 = rabbit@events-2.events-pods.apps\n"
	if got := peers(inst); got != want {
		t.Errorf("peers =\n%s\nwant\n%s", got, want)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(ja) == string(jb)
}

func TestNodeOrdinal(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "apps"}}
	for node, want := range map[string]int{
		"rabbit@events-4.events-pods.apps": 4, "rabbit@events-0.events-pods.apps": 0,
		"rabbit@events-4.events-pods.other": -1, "rabbit@orders-1.orders-pods.apps": -1, "events-1.events-pods.apps": -1,
	} {
		if got := nodeOrdinal(inst, node); got != want {
			t.Errorf("nodeOrdinal(%s) = %d, want %d", node, got, want)
		}
	}
}

func TestVhostNames(t *testing.T) {
	enginetest.CheckTargets(t, Engine{}, map[string]string{
		".": "not a vhost name", "..": "not a vhost name", "a/../b": "not a vhost name", "./a": "not a vhost name",
		"a//b": "segments may not be empty", "/orders": "not a vhost name", "orders/": "not a vhost name",
	}, "", "/", "orders", "team/orders", "a.b", "...")
}

func TestForeignUsersRefused(t *testing.T) {
	enginetest.CheckForeignUsers(t, Engine{}, AdminUser)
}
