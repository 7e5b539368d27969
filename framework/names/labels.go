package names

// Label keys the framework puts on every child. app.kubernetes.io/* are the Kubernetes
// recommended labels; the manager's cache selects children by ManagedByLabel.
const (
	NameLabel      = "app.kubernetes.io/name"
	InstanceLabel  = "app.kubernetes.io/instance"
	ComponentLabel = "app.kubernetes.io/component"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	PartOfLabel    = "app.kubernetes.io/part-of"
	VersionLabel   = "app.kubernetes.io/version"
	EngineLabel    = "datafleet.dev/engine"

	// ProtectedLabel is "true" on a namespace while it holds a ServiceInstance with deletion
	// protection: the webhook that refuses deleting such a namespace selects on it, failing closed.
	ProtectedLabel = "datafleet.dev/protected-instances"

	// ManagedBy is the value of ManagedByLabel on everything Datafleet creates.
	ManagedBy = "datafleet"
)

// InstanceLabels are the labels that identify one instance's children (and select its pods).
// They never change over the instance's life, so they are safe in selectors.
func InstanceLabels(engine, instance string) map[string]string {
	return map[string]string{
		NameLabel:      engine,
		InstanceLabel:  instance,
		ManagedByLabel: ManagedBy,
		EngineLabel:    engine,
	}
}

// Standard returns InstanceLabels plus part-of and version, for object metadata.
func Standard(engine, instance, version string) map[string]string {
	l := InstanceLabels(engine, instance)
	l[PartOfLabel] = "datafleet"
	if version != "" {
		l[VersionLabel] = version
	}
	return l
}

// BindingsByInstance is the field index of ServiceBindings by the instance they refer to
// ("<namespace>/<name>"), across namespaces: the binding controller registers it, the instance
// controller finds an instance's bindings with it before deletion.
const BindingsByInstance = "spec.instanceRef"
