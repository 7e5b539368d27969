// Package engine is the contract between the framework and an engine plugin: a small required
// interface (Engine) and optional capability interfaces an engine opts into by implementing them.
package engine

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
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
	// Archive is where the instance's continuous archive goes, for a ContinuousArchiver with
	// spec.backup.continuous; nil otherwise.
	Archive *ArchiveInput
}

// CheckAgentImage fails the Render of an engine whose pods run the agent when the operator was
// started without an agent image.
func (in RenderInput) CheckAgentImage(engineName string) error {
	if in.AgentImage == "" {
		return fmt.Errorf("the operator was started without an agent image (--agent-image), which %s pods need", engineName)
	}
	return nil
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
	// Archive is the primary's continuous archiving as its agent reports it, for a
	// ContinuousArchiver with spec.backup.continuous; nil when no primary reported it.
	Archive *fwagent.ArchiveStatus
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
	// Expires, when set, is when an object of this kind, left as it is, next needs its instance
	// looked at: a lease whose holder stops renewing sends no event when it lapses. The framework
	// wakes the instance then (ahead of the polls in the queue), once per object, the time moved
	// by each change of the object, so the engine need not poll for it. Expires sees every
	// change, whatever Predicates pass; zero time: no wake.
	Expires func(client.Object) time.Time
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
