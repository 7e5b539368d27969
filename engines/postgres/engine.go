// Package postgres is the PostgreSQL engine: it validates an instance's parameters and renders its
// children. The pod's PID 1 is the instance agent (package agent), copied from the operator image.
package postgres

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/params"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// Name is the value of spec.engine this engine serves.
const Name = "postgres"

// Engine is the PostgreSQL engine.
type Engine struct {
	// leases remembers when each primary lease's renewal was first seen (primary.Observer), so
	// that no lease expires before its holder fenced, whatever the clocks say.
	leases *primary.Observer
}

var _ engine.Engine = Engine{}

// New returns the PostgreSQL engine.
func New() Engine { return Engine{leases: primary.NewObserver()} }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

// ChildTypes implements engine.Engine.
func (Engine) ChildTypes() []client.Object {
	return []client.Object{&corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}, &rbacv1.Role{},
		&rbacv1.RoleBinding{}, &policyv1.PodDisruptionBudget{}, &appsv1.StatefulSet{}}
}

// Ports implements engine.Engine. The operator and the backup Jobs go through the agent only.
func (Engine) Ports() engine.Ports { return engine.Ports{Clients: []string{"postgres"}} }

// Parameters users may set, with their types. The list is deliberately short: every entry is a
// setting we have reasoned about; more are added as users ask.
var parameters = params.Spec{
	Allowed: map[string]params.Kind{
		"max_connections":                     params.Int(10, 10000),
		"shared_buffers":                      params.Memory(),
		"work_mem":                            params.Memory(),
		"maintenance_work_mem":                params.Memory(),
		"effective_cache_size":                params.Memory(),
		"random_page_cost":                    params.Float(),
		"statement_timeout":                   params.Int(0, 2147483647),
		"idle_in_transaction_session_timeout": params.Int(0, 2147483647),
		"log_min_duration_statement":          params.Int(-1, 2147483647),
		"log_statement":                       params.Enum("none", "ddl", "mod", "all"),
		"synchronous_commit":                  params.Enum("on", "off", "local", "remote_write", "remote_apply"),
	},
	Owned: map[string]string{
		"data_directory":            "the data volume's layout is fixed",
		"hba_file":                  "the operator writes pg_hba.conf",
		"config_file":               "the operator writes the configuration",
		"port":                      "Services and probes use 5432",
		"listen_addresses":          "the pod must listen on its own address",
		"unix_socket_directories":   "the agent connects through the socket",
		"ssl":                       "use spec.tls",
		"archive_mode":              "use spec.backup.continuous",
		"archive_command":           "use spec.backup.continuous",
		"archive_library":           "use spec.backup.continuous",
		"archive_timeout":           "use spec.backup.continuous.archiveTimeout",
		"restore_command":           "recovery is configured by Restore",
		"primary_conninfo":          "replication is managed by the operator",
		"synchronous_standby_names": "use spec.synchronousReplicas",
		"hot_standby":               "replicas always serve reads",
		"wal_level":                 "replication needs 'replica'",
	},
	// PostgreSQL's "postmaster" context; every other allowed parameter is applied by a reload.
	Restart: []string{"max_connections", "shared_buffers"},
}

var _ engine.ContinuousArchiver = Engine{}

// Superseded implements engine.ContinuousArchiver: the primary's archive_command is the segment
// archive's push (see the agent's archiving.go), and WAL segments order as the agent's Superseded says.
func (Engine) Superseded(segment, start string) bool { return pgagent.Superseded(segment, start) }

// Validate implements engine.Engine.
func (Engine) Validate(inst *v1alpha1.ServiceInstance, _ catalog.Release) field.ErrorList {
	errs := parameters.Validate(inst.Spec.Parameters, field.NewPath("spec", "parameters"))
	if p := inst.Spec.Primary; p != "" {
		sts := names.Child(inst.Name, "", names.MaxStatefulSet)
		if n := workload.Ordinal(p); n < 0 || n >= int(inst.DesiredReplicas()) || p != workload.PodName(inst, n) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "primary"), p,
				fmt.Sprintf("must name one of the instance's pods, %s-0 to %s-%d", sts, sts, inst.DesiredReplicas()-1)))
		}
	}
	return errs
}
