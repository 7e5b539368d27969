// Package engine is the contract between the framework and an engine plugin: a small required
// interface (Engine) and optional capability interfaces an engine opts into by implementing them.
package engine

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
