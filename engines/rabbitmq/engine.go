// Package rabbitmq is the RabbitMQ engine: clustered brokers whose nodes find each other through
// the classic peer-discovery list, with quorum queues as the default queue type. The pod's PID 1
// is the instance agent (package agent), copied from the operator image, so the official images
// work as well as ours.
package rabbitmq

import (
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/params"
)

// Name is the value of spec.engine this engine serves.
const Name = "rabbitmq"

// Engine is the RabbitMQ engine.
type Engine struct {
	// management reaches a pod's node's management API; nil means at the pod's IP. Tests point
	// it at local nodes.
	management func(p *corev1.Pod, password string) management
}

var _ engine.Engine = Engine{}

// New returns the RabbitMQ engine.
func New() Engine { return Engine{} }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

// ChildTypes implements engine.Engine.
func (Engine) ChildTypes() []client.Object {
	return []client.Object{&corev1.ConfigMap{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}, &appsv1.StatefulSet{}}
}

// Ports implements engine.Engine. The management API is a client port: bindings' users carry the
// management tag. The operator manages users and definitions, and backup Jobs export them, through it.
func (Engine) Ports() engine.Ports {
	return engine.Ports{Clients: []string{"amqp", "amqps", "management", "management-tls"}, Operator: []string{"management", "management-tls"}}
}

// parameters are rabbitmq.conf keys users may set, with their types. RabbitMQ reads its
// configuration only when a node starts, so every change rolls the nodes one at a time.
var parameters = func() params.Spec {
	s := params.Spec{
		Allowed: map[string]params.Kind{
			"vm_memory_high_watermark.relative": params.Float(),
			"disk_free_limit.absolute":          params.Memory(),
			"heartbeat":                         params.Int(0, 3600),
			"channel_max":                       params.Int(1, 65535),
			"max_message_size":                  params.Int(1, 536870912),
			"consumer_timeout":                  params.Int(1000, 604800000),
			"collect_statistics_interval":       params.Int(1000, 3600000),
			"cluster_partition_handling":        params.Enum("pause_minority", "autoheal", "ignore"),
			"log.console.level":                 params.Enum("debug", "info", "warning", "error"),
			"queue_master_locator":              params.Enum("client-local", "balanced", "min-masters"),
		},
		Owned: map[string]string{
			"listeners.":         "the operator sets the AMQP listeners (5672, and 5671 with spec.tls)",
			"management.":        "the management API listens on 15672 (15671 with spec.tls) inside the cluster only",
			"ssl_options.":       "use spec.tls: the operator issues and rotates the certificates",
			"cluster_formation.": "the operator forms the cluster from the instance's pods",
			"default_user":       "the operator's own administrator; applications get users from a ServiceBinding",
			"default_pass":       "the operator's own administrator; applications get users from a ServiceBinding",
			"loopback_users":     "the operator's administrator must connect over the pod network",
			"log.file":           "nodes log to the console, which the kubelet collects",
			"default_queue_type": "quorum queues are the default; a client may still declare x-queue-type per queue",
			"cluster_name":       "the cluster is named after the instance",
			"prometheus.":        "the metrics plugin listens on loopback; the agent serves its figures with TLS and the scrape token",
		},
	}
	s.Restart = slices.Sorted(maps.Keys(s.Allowed))
	return s
}()

// Validate implements engine.Engine.
func (Engine) Validate(inst *v1alpha1.ServiceInstance, _ catalog.Release) field.ErrorList {
	errs := parameters.Validate(inst.Spec.Parameters, field.NewPath("spec", "parameters"))
	if n := inst.DesiredReplicas(); n%2 == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "replicas"), n,
			"must be odd (1, 3, 5, ...): quorum queues need a majority of nodes, and an even number tolerates no more lost nodes than one fewer"))
	}
	if inst.Spec.SynchronousReplicas != nil || inst.Spec.Primary != "" {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "synchronousReplicas and primary are for engines with a primary; "+
			"every RabbitMQ node serves clients, and quorum queues replicate to a majority"))
	}
	return errs
}

var _ engine.ScaleDownGuard = Engine{}

// ScaleDownRisk implements engine.ScaleDownGuard.
func (Engine) ScaleDownRisk() string {
	return "a RabbitMQ node that goes takes with it the classic queues declared on it and its replicas of every " +
		"quorum queue, which may then lack a majority, and its cluster keeps waiting for it to come back. " +
		"With spec.scaleDown: Drain the operator first moves the leaving nodes' quorum queue replicas to the " +
		"nodes that stay and removes the leaving nodes from the cluster; their classic queues are lost."
}
