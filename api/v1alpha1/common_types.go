package v1alpha1

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// InstanceReference names a ServiceInstance, in the referrer's namespace unless namespace is set.
type InstanceReference struct {
	// name of the ServiceInstance (a name a ServiceInstance can have).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// namespace of the ServiceInstance; defaults to the referrer's namespace. Another namespace
	// is only honoured when the instance's bindingPolicy allows the referrer's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// SecretKeyReference points at one key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// key inside the Secret.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// Standard condition types shared by the Datafleet kinds.
const (
	// ConditionReady is True when the object does what it was asked to do.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is moving the object toward its spec.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when an object that was Ready no longer is.
	ConditionDegraded = "Degraded"
	// ConditionVersionSupported tells whether the instance's version is in the catalog and inside its support window.
	ConditionVersionSupported = "VersionSupported"
	// ConditionStorageResized is False while data volumes grow to a new spec.storage.size, or
	// when the storage class refuses to grow them; True once every volume has the requested size.
	ConditionStorageResized = "StorageResized"
	// ConditionDeletionBlocked is True while deletion protection holds a deleted instance.
	ConditionDeletionBlocked = "DeletionBlocked"
	// ConditionRestartPending is True while a change that restarts the pods waits for their next
	// restart (status.pendingRestarts); absent otherwise.
	ConditionRestartPending = "RestartPending"
	// ConditionPaused is True while spec.paused stops the operator from changing an instance;
	// absent otherwise.
	ConditionPaused = "Paused"
	// ConditionContinuousArchiving says whether the primary archives its write-ahead log to the
	// store (spec.backup.continuous); absent when it is off.
	ConditionContinuousArchiving = "ContinuousArchiving"
)
