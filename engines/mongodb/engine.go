// Package mongodb is the MongoDB engine: replica sets whose members the instance agent (package
// agent) initiates and reconfigures, users through createUser/updateUser/dropUser, and logical
// dumps through the Go driver. The pod's PID 1 is the agent, copied from the operator image, so
// the official mongo images work as they are.
//
// A catalog version named "ferretdb-..." runs FerretDB instead of mongod (see docs/engines/mongodb.md):
// one member, no replica set, no roles. It exists because no mongod can run on the machines this
// project is tested on.
package mongodb

import (
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/params"
)

// Name is the value of spec.engine this engine serves.
const Name = "mongodb"

// FerretDBPrefix starts the catalog versions that run FerretDB.
const FerretDBPrefix = "ferretdb-"

// ServerOf is the server a release runs.
func ServerOf(rel catalog.Release) string {
	if strings.HasPrefix(rel.Version, FerretDBPrefix) {
		return mongoagent.ServerFerretDB
	}
	return mongoagent.ServerMongod
}

// Engine is the MongoDB engine.
type Engine struct {
	// agentAt is a pod's agent's address; nil means at the pod's IP. Tests point it at agents
	// of their own, since no mongod runs here.
	agentAt func(*corev1.Pod) string
	// serverAt is a pod's server's address; nil means the pod's IP and the server's port. Tests point it at a
	// FerretDB of their own.
	serverAt func(*corev1.Pod) string
}

func (e Engine) serverAddress(p *corev1.Pod) string {
	if e.serverAt != nil {
		return e.serverAt(p)
	}
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(mongoagent.Port))
}

var _ engine.Engine = Engine{}

// New returns the MongoDB engine.
func New() Engine { return Engine{} }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

// ChildTypes implements engine.Engine.
func (Engine) ChildTypes() []client.Object {
	return []client.Object{&corev1.ConfigMap{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}, &appsv1.StatefulSet{}}
}

// Ports implements engine.Engine. The operator manages bindings' users, and backup Jobs dump and
// restore, through mongod itself.
func (Engine) Ports() engine.Ports {
	return engine.Ports{Clients: []string{"mongodb"}, Operator: []string{"mongodb"}}
}

// parameters are mongod options (their configuration-file names) users may set, with their
// types. mongod reads its configuration at start only, so every change rolls the members.
var parameters = func() params.Spec {
	s := params.Spec{
		Allowed: map[string]params.Kind{
			"storage.wiredTiger.engineConfig.cacheSizeGB":  params.Float(),
			"operationProfiling.mode":                      params.Enum("off", "slowOp", "all"),
			"operationProfiling.slowOpThresholdMs":         params.Int(0, 3600000),
			"net.maxIncomingConnections":                   params.Int(1, 1000000),
			"systemLog.verbosity":                          params.Int(0, 5),
			"setParameter.transactionLifetimeLimitSeconds": params.Int(1, 86400),
		},
		Owned: map[string]string{
			"net.port":              "Services and probes use 27017",
			"net.bindIp":            "members listen on every address of their pod",
			"net.tls.":              "TLS is not offered for MongoDB yet",
			"replication.":          "the operator names the replica set and manages its members",
			"security.":             "the operator sets the keyfile and turns authorization on",
			"storage.dbPath":        "the data volume's layout is fixed",
			"systemLog.destination": "members log to the console, which the kubelet collects",
			"systemLog.path":        "members log to the console, which the kubelet collects",
			"processManagement.":    "the agent runs mongod in the foreground",
		},
	}
	s.Restart = slices.Sorted(maps.Keys(s.Allowed))
	return s
}()

// Validate implements engine.Engine.
func (Engine) Validate(inst *v1alpha1.ServiceInstance, rel catalog.Release) field.ErrorList {
	spec := field.NewPath("spec")
	errs := parameters.Validate(inst.Spec.Parameters, spec.Child("parameters"))
	if n := inst.DesiredReplicas(); n%2 == 0 {
		errs = append(errs, field.Invalid(spec.Child("replicas"), n,
			"must be odd (1, 3, 5, ...): a replica set elects its primary by majority, and an even number tolerates no more lost members than one fewer"))
	}
	if inst.Spec.SynchronousReplicas != nil || inst.Spec.Primary != "" {
		errs = append(errs, field.Forbidden(spec, "synchronousReplicas and primary are not for MongoDB: the replica set elects its own primary, "+
			"and applications ask for acknowledgement from a majority with their write concern"))
	}
	if inst.TLSEnabled() {
		errs = append(errs, field.Forbidden(spec.Child("tls"), "TLS is not offered for MongoDB instances yet"))
	}
	if ServerOf(rel) == mongoagent.ServerFerretDB {
		if n := inst.DesiredReplicas(); n != 1 {
			errs = append(errs, field.Invalid(spec.Child("replicas"), n,
				"version "+rel.Version+" runs FerretDB, which has no replica sets: it runs exactly 1 member"))
		}
		if len(inst.Spec.Parameters) > 0 {
			errs = append(errs, field.Forbidden(spec.Child("parameters"), "version "+rel.Version+" runs FerretDB, which takes no mongod options"))
		}
	}
	return errs
}
