package postgres

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
)

var release = catalog.Release{Version: "15", Image: "datafleet.local/postgres:15"}

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{
		Engine: New(), Release: release, AgentImage: "datafleet.local/datafleet-operator:test",
		Instances: []*v1alpha1.ServiceInstance{enginetest.Instance(Name, "one", 1)},
	})
}

func TestGolden(t *testing.T) {
	inst := enginetest.Instance(Name, "orders", 1)
	inst.Spec.Parameters = map[string]string{"max_connections": "200", "work_mem": "8MB"}
	inst.Spec.Storage = &v1alpha1.StorageSpec{Size: resource.MustParse("5Gi")}
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true, Required: true}
	enginetest.Golden(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: "datafleet.local/datafleet-operator:test"},
		"testdata/orders.golden.yaml")
}

// An instance with continuous archiving mounts its store's configuration, credentials and key,
// gives the agent the configuration, and sets archive_timeout in the parameters (a reload).
func TestGoldenContinuousArchiving(t *testing.T) {
	inst := enginetest.Instance(Name, "ledger", 2)
	inst.Spec.Backup = &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"},
		Continuous: &v1alpha1.ContinuousArchiving{ArchiveTimeout: &metav1.Duration{Duration: 30 * time.Second}}}
	store := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: inst.Namespace}, Spec: v1alpha1.BackupStoreSpec{
		URL: "s3://backups?endpoint=http://minio.storage.svc:9000&use_path_style=true&region=us-east-1", Prefix: "team-a",
		CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "store-credentials"},
		Encryption:           &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: "backup-key", Key: "key"}},
	}}
	enginetest.Golden(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: "datafleet.local/datafleet-operator:test",
		Archive: engine.NewArchiveInput(inst, store)}, "testdata/ledger-archiving.golden.yaml")
}

func TestValidateNamesTheField(t *testing.T) {
	inst := enginetest.Instance(Name, "orders", 3)
	inst.Spec.Parameters = map[string]string{"port": "5433", "work_mem": "lots", "fsync": "off"}
	inst.Spec.Primary = "orders-3"
	enginetest.ExpectErrors(t, New().Validate(inst, release),
		`spec.parameters[fsync]: Unsupported value: "fsync": supported values:`,
		`spec.parameters[port]: Forbidden: port is set by the operator: Services and probes use 5432`,
		`spec.parameters[work_mem]: Invalid value: "lots": must be a size such as 128MB or 4GB`,
		`spec.primary: Invalid value: "orders-3": must name one of the instance's pods, orders-0 to orders-2`,
	)
}

func TestRenderNeedsTheAgentImage(t *testing.T) {
	_, err := New().Render(engine.RenderInput{Instance: enginetest.Instance(Name, "orders", 1), Release: release})
	if err == nil || !strings.Contains(err.Error(), "--agent-image") {
		t.Fatalf("err = %v", err)
	}
}

// A reload parameter must leave the pod template alone (no restart); a restart parameter must
// change it (the supervisor then rolls the pods).
func TestOnlyRestartParametersChangeThePodTemplate(t *testing.T) {
	for _, p := range parameters.Restart {
		if _, ok := parameters.Allowed[p]; !ok {
			t.Errorf("restart parameter %s is not allowed", p)
		}
	}
	template := func(params map[string]string) string {
		inst := enginetest.Instance(Name, "orders", 3)
		inst.Spec.Parameters = params
		return enginetest.PodTemplate(t, New(), engine.RenderInput{Instance: inst, Release: release, AgentImage: "agent"})
	}
	base := template(map[string]string{"max_connections": "100", "work_mem": "4MB"})
	if template(map[string]string{"max_connections": "100", "work_mem": "64MB", "log_statement": "ddl"}) != base {
		t.Error("changing reload parameters changed the pod template")
	}
	if template(map[string]string{"max_connections": "120", "work_mem": "4MB"}) == base {
		t.Error("changing max_connections left the pod template as it was")
	}
}

func TestReservedDatabases(t *testing.T) {
	enginetest.CheckTargets(t, Engine{}, map[string]string{
		"postgres": "maintenance database", "template0": "reserved", "template1": "reserved",
		"dfrestore_app": "restore databases", "dfreplaced_app": "restore databases",
	}, "", "app", "Postgres", "my_postgres", "template2")
}

// Synchronous replication names the instance's own pods: a walsender of any other name (a clone
// in progress, a client with the replication password) never confirms a commit.
func TestSynchronousStandbysAreTheInstancesPods(t *testing.T) {
	inst := enginetest.Instance(Name, "db", 3)
	inst.Spec.SynchronousReplicas = ptr.To[int32](1)
	want := `synchronous_standby_names = 'ANY 1 ("db-0", "db-1", "db-2")'` + "\n"
	if got := configMap(inst, nil).Data[paramsFile]; !strings.Contains(got, want) {
		t.Errorf("parameters %q, want the line %q", got, want)
	}
}

func TestForeignUsersRefused(t *testing.T) {
	enginetest.CheckForeignUsers(t, Engine{}, pgagent.Superuser, pgagent.ReplicationUser)
}
