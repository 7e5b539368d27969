package mongodb

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
)

var (
	release  = catalog.Release{Version: "8.0", Image: "docker.io/library/mongo:8.0"}
	ferretdb = catalog.Release{Version: "ferretdb-1.24", Image: "datafleet.local/ferretdb:1.24.0"}
)

const agentImage = "datafleet.local/datafleet-operator:test"

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{
		Engine: New(), Release: release, AgentImage: agentImage,
		Instances: []*v1alpha1.ServiceInstance{enginetest.Instance(Name, "one", 1), enginetest.Instance(Name, "three", 3)},
	})
}

func TestGolden(t *testing.T) {
	inst := enginetest.Instance(Name, "catalog", 3)
	inst.Spec.Parameters = map[string]string{"storage.wiredTiger.engineConfig.cacheSizeGB": "0.5", "operationProfiling.mode": "slowOp"}
	inst.Spec.Storage = &v1alpha1.StorageSpec{Size: resource.MustParse("5Gi")}
	enginetest.Golden(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: agentImage},
		"testdata/catalog.golden.yaml")
	enginetest.Golden(t, New(), engine.RenderInput{Instance: enginetest.Instance(Name, "local", 1), Release: ferretdb, AgentImage: agentImage},
		"testdata/local-ferretdb.golden.yaml")
}

func TestValidateNamesTheField(t *testing.T) {
	inst := enginetest.Instance(Name, "catalog", 4)
	inst.Spec.Parameters = map[string]string{
		"net.port": "27018", "security.authorization": "disabled", "replication.oplogSizeMB": "1024",
		"operationProfiling.mode": "sometimes", "systemLog.verbosity": "9", "storage.engine": "inMemory",
	}
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true}
	enginetest.ExpectErrors(t, New().Validate(inst, release),
		`spec.parameters[net.port]: Forbidden: net.port is set by the operator: Services and probes use 27017`,
		`spec.parameters[operationProfiling.mode]: Invalid value: "sometimes": must be one of: off, slowOp, all`,
		`spec.parameters[replication.oplogSizeMB]: Forbidden: replication.oplogSizeMB is set by the operator`,
		`spec.parameters[security.authorization]: Forbidden: security.authorization is set by the operator`,
		`spec.parameters[storage.engine]: Unsupported value: "storage.engine"`,
		`spec.parameters[systemLog.verbosity]: Invalid value: "9"`,
		`spec.replicas: Invalid value: 4: must be odd`,
		`spec.tls: Forbidden: TLS is not offered for MongoDB instances yet`,
	)
	local := enginetest.Instance(Name, "local", 3)
	local.Spec.Parameters = map[string]string{"systemLog.verbosity": "1"}
	enginetest.ExpectErrors(t, New().Validate(local, ferretdb),
		`spec.replicas: Invalid value: 3: version ferretdb-1.24 runs FerretDB, which has no replica sets: it runs exactly 1 member`,
		`spec.parameters: Forbidden: version ferretdb-1.24 runs FerretDB, which takes no mongod options`,
	)
}

// mongod reads its configuration at start only: every parameter must change the pod template,
// so the supervisor rolls the members; the member list must not, or scaling would restart them.
func TestParametersRollTheMembersAndMembershipDoesNot(t *testing.T) {
	template := func(replicas int32, params map[string]string) string {
		inst := enginetest.Instance(Name, "catalog", replicas)
		inst.Spec.Parameters = params
		return enginetest.PodTemplate(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: agentImage})
	}
	base := template(3, map[string]string{"systemLog.verbosity": "1"})
	if template(3, map[string]string{"systemLog.verbosity": "2"}) == base {
		t.Error("changing systemLog.verbosity left the pod template as it was")
	}
	if template(5, map[string]string{"systemLog.verbosity": "1"}) != base {
		t.Error("adding members changed the pod template")
	}
}

func TestConfigNestsAndTypesTheParameters(t *testing.T) {
	inst := enginetest.Instance(Name, "catalog", 1)
	inst.Spec.Parameters = map[string]string{"storage.wiredTiger.engineConfig.cacheSizeGB": "0.25", "net.maxIncomingConnections": "200"}
	got, err := config(inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  maxIncomingConnections: 200\n", "      cacheSizeGB: 0.25\n", "  replSetName: catalog\n",
		"  keyFile: /var/run/mongodb/keyfile\n", "  authorization: enabled\n", "  bindIpAll: true\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("mongod.conf lacks %q:\n%s", want, got)
		}
	}
}

// The binding's URI names the replica set for mongod, so drivers follow elections; FerretDB has
// no set, and a driver told to expect one would never find it.
func TestConnectionNamesTheReplicaSet(t *testing.T) {
	b := &v1alpha1.ServiceBinding{Spec: v1alpha1.ServiceBindingSpec{Database: "orders"}}
	inst := enginetest.Instance(Name, "catalog", 3)
	inst.Namespace = "shop"
	c := New().Connection(engine.UsersInput{Instance: inst, Release: release, Binding: b}, "u_1", "p@ss")
	if want := "mongodb://u_1:p%40ss@catalog.shop.svc:27017/orders?authSource=orders&replicaSet=catalog"; c.URI != want {
		t.Errorf("URI = %s, want %s", c.URI, want)
	}
	c = New().Connection(engine.UsersInput{Instance: inst, Release: ferretdb, Binding: b}, "u_1", "p")
	if want := "mongodb://u_1:p@catalog.shop.svc:27017/orders?authSource=orders"; c.URI != want {
		t.Errorf("FerretDB URI = %s, want %s", c.URI, want)
	}
}

func TestReservedDatabases(t *testing.T) {
	enginetest.CheckTargets(t, Engine{}, map[string]string{"admin": "reserved", "local": "reserved", "config": "reserved"},
		"", "app", "Admin", "admins")
}

func TestForeignUsersRefused(t *testing.T) {
	enginetest.CheckForeignUsers(t, Engine{}, mongoagent.AdminUser)
}
