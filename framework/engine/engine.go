// Package engine is the contract between the framework and an engine plugin: a small required
// interface (Engine) and optional capability interfaces an engine opts into by implementing them.
package engine

import (
	"context"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
)

// Engine is what every engine implements.
type Engine interface {
	// Name is the value of spec.engine this engine serves: lowercase letters and digits.
	Name() string

	// ChildTypes lists the kinds of object Render can return (for example &appsv1.StatefulSet{}),
	// so that the manager watches and caches them and the framework can prune them.
	ChildTypes() []client.Object

	// Validate checks the parts of the spec only the engine understands (parameters, replicas
	// its topology allows, ...) against the resolved release. Errors end up in the instance's
	// Ready condition with reason InvalidSpec.
	Validate(inst *v1alpha1.ServiceInstance, rel catalog.Release) field.ErrorList

	// Render returns the children the instance needs. It must be a pure function of its input:
	// same input, same output, no API calls. The framework sets namespace, standard labels and the
	// controller owner reference on every object, so Render need not.
	Render(in RenderInput) ([]client.Object, error)

	// Ports says who may reach which of the pods' named container ports (see Ports).
	Ports() Ports
}

// RenderInput is everything Render may use.
type RenderInput struct {
	Instance *v1alpha1.ServiceInstance
	Release  catalog.Release
	// AgentImage is the operator's own image. Engines whose pods run the instance agent copy the
	// manager binary from it with an init container, so engine images need no entrypoint.
	AgentImage string
}

// Observation is what the framework learns about a running instance.
type Observation struct {
	// Replicas the engine runs and ReadyReplicas of them that are ready.
	Replicas      int32
	ReadyReplicas int32
	// Ready is true when the instance serves clients as its spec asks.
	Ready bool
	// Reason and Message explain a not-Ready observation (CamelCase reason, human message).
	Reason  string
	Message string
	// CurrentPrimary names the pod serving writes, for engines with a primary.
	CurrentPrimary string
	// Endpoints clients connect to.
	Endpoints []v1alpha1.Endpoint
	// Members of the instance, for engines that report them (role and replication state).
	Members []v1alpha1.Member
}

// ObserveInput is what an Observer may use. Reader reads from the manager's cache.
type ObserveInput struct {
	Instance *v1alpha1.ServiceInstance
	Release  catalog.Release
	Reader   client.Reader
	// Generic is the framework's own observation from the rendered workloads' status.
	Generic Observation
}

// Observer is implemented by engines that know more about readiness than the workloads'
// ready replicas (the current primary, replication state, cluster membership).
type Observer interface {
	Observe(ctx context.Context, in ObserveInput) (Observation, error)
}

// Finalizer is implemented by engines that must act before an instance's children are removed
// (for example to stop replication cleanly). It must be idempotent: it runs again after a restart.
type Finalizer interface {
	Finalize(ctx context.Context, inst *v1alpha1.ServiceInstance, c client.Client) error
}

// Supervisor is implemented by engines that act on a running instance beyond applying its
// children: electing a primary, labelling pods by role, restarting pods one at a time in an order
// only the engine knows. Supervise runs after the children are applied, in place of Observe. It
// may write, must be idempotent (a restart can interrupt it anywhere), and must write nothing
// once the instance is settled.
type Supervisor interface {
	Supervise(ctx context.Context, in SuperviseInput) (SuperviseResult, error)
}

// SuperviseInput is what a Supervisor may use.
type SuperviseInput struct {
	Instance *v1alpha1.ServiceInstance
	Release  catalog.Release
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// Children as rendered and applied.
	Children []client.Object
	// Owner is the owner reference for objects the engine creates outside Render (a lease, a
	// generated Secret), so they go when the instance goes. It is not a controller reference, so
	// pruning never removes them.
	Owner metav1.OwnerReference
	// Generic is the framework's own observation from the rendered workloads' status.
	Generic Observation
	Now     time.Time
	// Agents reaches the instance's agents with the operator's client certificate.
	Agents fwagent.Dialer
}

// SuperviseResult is what the supervisor learned, and when it wants to look again (zero: only
// when something it watches changes).
type SuperviseResult struct {
	Observation  Observation
	RequeueAfter time.Duration
}

// TLSServer is implemented by engines that serve clients over TLS when spec.tls.enabled. Before
// Render, the framework issues the instance a CA and a server certificate (framework/certs) in
// the Secret certs.ServerSecretName, which Render mounts and the engine serves.
type TLSServer interface {
	// TLSNames are the names the certificate must be valid for, relative to the namespace: the
	// Services clients use, and "*.<headless service>" for the pods.
	TLSNames(inst *v1alpha1.ServiceInstance) []string
}

// Watch is a kind of object, labelled with an instance's labels but not rendered by the engine
// (pods, leases), whose changes should run the instance's reconcile.
type Watch struct {
	Type       client.Object
	Predicates []predicate.Predicate
}

// Watcher is implemented by engines that need such watches.
type Watcher interface {
	Watches() []Watch
}

// MemberDrainer is implemented by engines whose members must leave the engine's own membership
// before their pods stop (a MongoDB replica set of three that loses two members unannounced has
// no majority left to remove them with). Before every scale-down the framework calls DrainMember
// for each leaving member, highest ordinal first, and shrinks the StatefulSet only once every one
// returned nil; then it deletes their volumes, so a member added again later starts empty.
type MemberDrainer interface {
	// DrainMember moves what the pod's member holds to the members that stay, or takes it out of
	// the membership. It must be idempotent: it is called again until it succeeds, and after an
	// operator restart.
	DrainMember(ctx context.Context, in SuperviseInput, pod string) error
}

// ScaleDownGuard is implemented by MemberDrainers whose members each hold data the others may
// not have a copy of (a RabbitMQ node holds the classic queues declared on it and its share of
// every quorum queue's replicas). Unless spec.scaleDown is Drain, the framework refuses to lower
// such an instance's replicas: nothing is applied and the Ready condition says why, with
// ScaleDownRisk's explanation. With Drain, it drains as for any MemberDrainer. Removing a
// departed member from the engine's own membership is the Supervisor's part.
type ScaleDownGuard interface {
	MemberDrainer
	ScaleDownRisk() string
}

// NotReady gathers, while a Supervisor runs, why the instance is not ready (the first reason
// given wins: it is the earliest step's) and when to look again (the soonest time wins).
type NotReady struct {
	Reason, Message string
	Requeue         time.Duration
}

// Wait records a reason to wait and a time to look again.
func (n *NotReady) Wait(reason, message string, after time.Duration) {
	if n.Reason == "" {
		n.Reason, n.Message = reason, message
	}
	if n.Requeue == 0 || after < n.Requeue {
		n.Requeue = after
	}
}
