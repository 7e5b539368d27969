package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what happens to an instance's data when the instance is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

// ScaleDownPolicy says whether members holding data may be removed.
type ScaleDownPolicy string

const (
	// ScaleDownRefuse keeps every member when replicas are lowered.
	ScaleDownRefuse ScaleDownPolicy = "Refuse"
	// ScaleDownDrain drains and removes the leaving members.
	ScaleDownDrain ScaleDownPolicy = "Drain"
)

const (
	// DeletionPolicyRetain keeps the data volumes (PersistentVolumeClaims) after the instance is gone.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete removes the data volumes with the instance.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// InstancePhase is a one-word summary of an instance's state; conditions carry the detail.
// +kubebuilder:validation:Enum=Pending;Provisioning;Ready;Updating;Degraded;Failed;Deleting
type InstancePhase string

// Instance phases.
const (
	PhasePending      InstancePhase = "Pending"
	PhaseProvisioning InstancePhase = "Provisioning"
	PhaseReady        InstancePhase = "Ready"
	PhaseUpdating     InstancePhase = "Updating"
	PhaseDegraded     InstancePhase = "Degraded"
	PhaseFailed       InstancePhase = "Failed"
	PhaseDeleting     InstancePhase = "Deleting"
)

// StorageSpec describes the data volume of each replica.
type StorageSpec struct {
	// size of each replica's data volume. It can grow (where the storage class allows expansion)
	// but never shrink.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="storage.size must be greater than zero"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",message="storage.size cannot be decreased: volumes can only grow. To shrink, restore a backup into a new, smaller instance"
	Size resource.Quantity `json:"size"`
	// storageClassName of the data volumes; the cluster default when omitted. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage.storageClassName is immutable: data cannot move between storage classes in place; restore a backup into a new instance instead"
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// TLSSpec turns on TLS for client connections.
// +kubebuilder:validation:XValidation:rule="!has(self.required) || !self.required || (has(self.enabled) && self.enabled)",message="tls.required needs tls.enabled: the instance must serve TLS before it can refuse everything else"
type TLSSpec struct {
	// enabled serves client connections over TLS with operator-issued certificates.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// required refuses every connection that is not TLS, replication included, which then
	// verifies the primary's certificate (PostgreSQL). On an existing instance, set it once the
	// instance is Ready with enabled: replicas verify a certificate the primary must already serve.
	// +optional
	Required bool `json:"required,omitempty"`
}

// InstanceBackupSpec holds backup defaults for an instance.
// +kubebuilder:validation:XValidation:rule="!has(self.continuous) || has(self.storeRef)",message="continuous archiving needs storeRef: the BackupStore the write-ahead log is archived to"
type InstanceBackupSpec struct {
	// storeRef names the BackupStore that backups of this instance go to by default.
	// +optional
	StoreRef *LocalObjectReference `json:"storeRef,omitempty"`
	// continuous archives every completed write-ahead log segment of the primary to storeRef
	// (compressed, encrypted with the store's key, written once), the ground of point-in-time
	// recovery (PostgreSQL). Turning it on or off restarts the pods (replicas first, then a
	// switchover), as any spec change that needs one.
	// +optional
	Continuous *ContinuousArchiving `json:"continuous,omitempty"`
}

// ContinuousArchiving are the settings of continuous WAL archiving.
type ContinuousArchiving struct {
	// archiveTimeout forces a segment switch when this long passed since the last one with
	// something written: the most a quiet database can lose (its RPO). Default 60s; from 10s to
	// 1h (every forced switch archives a whole segment, 16 MiB before compression).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="archiveTimeout must be between 10s and 1h"
	ArchiveTimeout *metav1.Duration `json:"archiveTimeout,omitempty"`
}

// DefaultArchiveTimeout is archiveTimeout when unset.
const DefaultArchiveTimeout = 60 * time.Second

// Timeout is the archive timeout (DefaultArchiveTimeout unless set).
func (c *ContinuousArchiving) Timeout() time.Duration {
	if c == nil || c.ArchiveTimeout == nil {
		return DefaultArchiveTimeout
	}
	return c.ArchiveTimeout.Duration
}

// BindingPolicy says which other namespaces may bind to the instance, with which roles at most
// and to which databases or vhosts. Bindings from the instance's own namespace are not limited.
// A binding from another namespace may use the targets named after its namespace (`<namespace>`
// or `<namespace>_…`: namespace names have no "_", so no namespace's names are another's), and
// the sharedTargets; admin only on the former.
type BindingPolicy struct {
	// allowedNamespaces lists the namespaces, besides the instance's own, whose ServiceBindings
	// may bind to this instance. "*" allows every namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$`
	AllowedNamespaces []string `json:"allowedNamespaces,omitempty"`
	// maxRole is the highest role a binding from another namespace may have: readOnly, readWrite
	// (the default) or admin. namespaces may set another for some namespaces.
	// +optional
	MaxRole BindingRole `json:"maxRole,omitempty"`
	// namespaces set the highest role of bindings from particular namespaces, above or below
	// maxRole. A namespace listed here is allowed to bind, as if in allowedNamespaces.
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +kubebuilder:validation:MaxItems=256
	Namespaces []NamespaceBindingPolicy `json:"namespaces,omitempty"`
	// sharedTargets are databases (PostgreSQL, MongoDB) or vhosts (RabbitMQ) of this instance's
	// own that bindings from other namespaces may also use, with readOnly or readWrite (never
	// admin: only the instance's namespace and the target's namesake namespace administer it).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	SharedTargets []string `json:"sharedTargets,omitempty"`
}

// NamespaceBindingPolicy is the highest role of bindings from one namespace.
type NamespaceBindingPolicy struct {
	// namespace whose bindings this is about.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// maxRole is the highest role its bindings may have.
	MaxRole BindingRole `json:"maxRole"`
}

// ServiceInstanceSpec is what the developer asks for.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storage) || has(self.storage)",message="storage cannot be removed once set"
type ServiceInstanceSpec struct {
	// engine is the data service: for example postgres, rabbitmq or mongodb. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9]*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="engine is immutable: create a new instance and move the data with a backup and restore"
	Engine string `json:"engine"`

	// version of the engine, one of the versions in the engine's VersionCatalog. Omitted, the
	// catalog's default version is used.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`
	Version string `json:"version,omitempty"`

	// plan names a ServicePlan of this engine. Its replicas, resources and storage apply where
	// this spec sets none; what this spec sets must lie within the plan's limits. Moving to
	// another plan must be one of the plan's allowedTransitions.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Plan string `json:"plan,omitempty"`

	// replicas is the number of engine pods: the plan's when omitted, else 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	Replicas *int32 `json:"replicas,omitempty"`

	// scaleDown says what lowering replicas does to an engine whose members each hold data the
	// others may lack (rabbitmq). Refuse, the default, changes nothing and says why in the Ready
	// condition. Drain first moves each leaving member's quorum queue replicas to the members that
	// stay, then removes the member from the cluster and deletes its volume; classic queues
	// declared on it are lost. Engines whose replicas are copies (postgres) scale down either way.
	// +optional
	// +kubebuilder:validation:Enum=Refuse;Drain
	ScaleDown ScaleDownPolicy `json:"scaleDown,omitempty"`

	// resources of each engine container, and of the init container that copies the agent in (it
	// runs before the engine, so this costs the node nothing more): with requests equal to limits
	// for cpu and memory the pods have the Guaranteed QoS class.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// storage of each replica.
	// +optional
	Storage *StorageSpec `json:"storage,omitempty"`

	// scheduling places the instance's pods: on which nodes, next to or away from what, and
	// with which priority. Every pod the instance owns gets it (its engine pods; its backup and
	// restore Jobs get the node selector, tolerations and priority class). Changing it replaces the
	// pods one at a time, as a resources change does.
	// +optional
	Scheduling *SchedulingSpec `json:"scheduling,omitempty"`

	// parameters is engine configuration, validated by the engine against its allow-list.
	// Names and values are strings.
	// +optional
	// +kubebuilder:validation:MaxProperties=256
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_.-]*$') && k.size() <= 128)",message="parameter names must start with a letter or underscore, contain only letters, digits, '_', '.' and '-', and be at most 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].size() <= 4096)",message="parameter values must be at most 4096 characters"
	Parameters map[string]string `json:"parameters,omitempty"`

	// tls configures TLS for client connections.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// backup holds backup defaults for this instance.
	// +optional
	Backup *InstanceBackupSpec `json:"backup,omitempty"`

	// deletionPolicy says what happens to the data volumes when the instance is deleted.
	// Retain (the default) keeps them; Delete removes them.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// deletionProtection, when true, holds a deleted instance (and all its data) until it is set
	// back to false.
	// +optional
	DeletionProtection bool `json:"deletionProtection,omitempty"`

	// paused, when true, stops the operator from changing anything of the instance (its children,
	// its pods, its generated Secrets, the users and roles inside the engine) until it is false
	// again, for debugging by hand; the condition Paused says so. Spec changes made meanwhile are
	// applied when it is lifted. Deleting a paused instance still deletes it.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// maintenanceWindow is when the operator may restart the pods for a change this spec did not
	// ask for (status.pendingRestarts: a new operator's agent). Omitted, the platform's default
	// window applies (the chart's maintenanceWindow); with neither, such changes wait for the
	// next restart the spec asks for.
	// +optional
	MaintenanceWindow *MaintenanceWindow `json:"maintenanceWindow,omitempty"`

	// synchronousReplicas is how many replicas must confirm each commit before it returns, for
	// engines with a primary (postgres). 0, the default, replicates asynchronously. With 1 or
	// more, a committed write survives losing the primary; writes wait while fewer replicas run.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SynchronousReplicas *int32 `json:"synchronousReplicas,omitempty"`

	// primary names the pod that should be the primary, for engines with a primary (postgres).
	// When it names a healthy replica, the operator switches over to it: the current primary
	// stops cleanly and the named pod is promoted. Empty lets the operator choose (and keep its
	// choice after a failover).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Primary string `json:"primary,omitempty"`

	// bindingPolicy says which other namespaces may bind to this instance.
	// +optional
	BindingPolicy *BindingPolicy `json:"bindingPolicy,omitempty"`
}

// SchedulingSpec is where an instance's pods may run. Each field is Kubernetes' own, passed to
// the pods as written; affinity and topologySpreadConstraints replace the operator's defaults
// (pods preferably on different nodes, evenly across zones) only in the parts they set.
type SchedulingSpec struct {
	// nodeSelector: the pods run only on nodes with all these labels.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// tolerations let the pods run on nodes with matching taints (nodes set aside for data).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// affinity of the pods. Its nodeAffinity and podAffinity are used as written; its
	// podAntiAffinity, when set, replaces the default (preferably one pod of the instance per node:
	// set requiredDuringSchedulingIgnoredDuringExecution to make that a rule).
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// topologySpreadConstraints replace the default (evenly across zones, when possible). A
	// constraint without a labelSelector selects the instance's own pods.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// priorityClassName is the pods' PriorityClass, which must exist. The system- classes are
	// Kubernetes' own (node- and cluster-critical components) and are refused.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('system-')",message="the system- priority classes are for Kubernetes' own components: create a PriorityClass for data pods"
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// Endpoint is one address clients can use.
type Endpoint struct {
	// name of the endpoint, for example "read-write" or "read-only".
	Name string `json:"name"`
	// host is a Service DNS name.
	Host string `json:"host"`
	// port number.
	Port int32 `json:"port"`
}

// InstanceTLSStatus says where clients find the CA that signs the instance's server certificate.
type InstanceTLSStatus struct {
	// caConfigMap names the ConfigMap (key ca.crt) holding the instance's CA certificate.
	CAConfigMap string `json:"caConfigMap"`
	// serverCertificateNotAfter is when the current server certificate expires; the operator
	// replaces it 30 days before.
	// +optional
	ServerCertificateNotAfter *metav1.Time `json:"serverCertificateNotAfter,omitempty"`
	// caNotAfter is when the CA that signs expires; it is rotated a year before.
	// +optional
	CANotAfter *metav1.Time `json:"caNotAfter,omitempty"`
	// caRotation is the step of a CA rotation in progress: TrustingNew (clients are given both
	// CAs; certificates still come from the old one) or ServingNew (certificates come from the
	// new one; both are still trusted). Empty when none is. The annotation datafleet.dev/rotate-ca
	// asks for one.
	// +optional
	CARotation string `json:"caRotation,omitempty"`
	// caRotationNextStep is when the rotation in progress moves on.
	// +optional
	CARotationNextStep *metav1.Time `json:"caRotationNextStep,omitempty"`
}

// ServiceInstanceStatus is what the operator observed.
type ServiceInstanceStatus struct {
	// phase is a one-word summary; conditions carry the detail.
	// +optional
	Phase InstancePhase `json:"phase,omitempty"`
	// observedGeneration is the generation whose spec was last applied in full.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, Progressing, Degraded, VersionSupported, DeletionBlocked, RestartPending,
	// Paused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// version resolved through the VersionCatalog.
	// +optional
	Version string `json:"version,omitempty"`
	// image the engine runs, resolved through the VersionCatalog.
	// +optional
	Image string `json:"image,omitempty"`
	// replicas the engine runs.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// readyReplicas is the number of replicas ready to serve.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// currentPrimary is the pod serving writes, for engines with a primary.
	// +optional
	CurrentPrimary string `json:"currentPrimary,omitempty"`
	// endpoints clients connect to.
	// +optional
	// +listType=map
	// +listMapKey=name
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// tls describes the certificates clients verify, when spec.tls.enabled.
	// +optional
	TLS *InstanceTLSStatus `json:"tls,omitempty"`
	// members of the instance with their role and replication state.
	// +optional
	// +listType=map
	// +listMapKey=name
	Members []Member `json:"members,omitempty"`
	// pendingRestarts are changes the operator holds back because applying them restarts the
	// pods and the instance's spec did not ask for them (an operator upgrade's new agent). They
	// are applied with the pods' next restart for a reason of the spec's own.
	// +optional
	// +listType=map
	// +listMapKey=reason
	PendingRestarts []PendingRestart `json:"pendingRestarts,omitempty"`
	// recoverableWindow is the span of time a point-in-time restore of this instance can reach,
	// while spec.backup.continuous archives it and a physical Backup of it is in the archive's
	// store; absent otherwise.
	// +optional
	RecoverableWindow *RecoverableWindow `json:"recoverableWindow,omitempty"`
}

// RecoverableWindow is the span of time a point-in-time restore can reach.
type RecoverableWindow struct {
	// from is the earliest time: when the oldest physical Backup in the archive's store completed.
	From metav1.Time `json:"from"`
	// to is the latest time the archive is known to reach: when its newest segment was stored,
	// as the primary reported it. It is refreshed at most once per archiveTimeout (so that an
	// instance under load does not write its status with every segment): the archive may reach
	// up to that much further, and a Restore to a later time waits for it.
	To metav1.Time `json:"to"`
}

// MaintenanceWindow is a weekly window: it opens at startTime on each of days, in timeZone, and
// stays open for duration.
// +kubebuilder:validation:XValidation:rule="duration(self.duration) >= duration('30m') && duration(self.duration) <= duration('24h')",message="duration must be between 30m and 24h"
type MaintenanceWindow struct {
	// days the window opens on; empty: every day.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:validation:items:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
	Days []string `json:"days,omitempty"`
	// startTime is when the window opens, HH:MM on a 24-hour clock.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	StartTime string `json:"startTime"`
	// duration the window stays open, from 30m to 24h.
	// +kubebuilder:validation:Type=string
	Duration metav1.Duration `json:"duration"`
	// timeZone is an IANA time zone such as Europe/Berlin; omitted, UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
}

// PendingRestart is one change waiting for the instance's pods to restart.
type PendingRestart struct {
	// reason is what kind of change it is: AgentUpgrade.
	Reason string `json:"reason"`
	// message says what changes, from what to what.
	Message string `json:"message"`
}

// Member is one pod of an instance as the operator last saw it.
type Member struct {
	// name of the pod.
	Name string `json:"name"`
	// role, for example primary or replica; empty when the pod did not answer.
	// +optional
	Role string `json:"role,omitempty"`
	// state, for example "streaming (synchronous)" for a replica or "not answering".
	// +optional
	State string `json:"state,omitempty"`
}

// ServiceInstance is one data service (a PostgreSQL cluster, a RabbitMQ cluster, a MongoDB
// replica set) owned by the operator for its whole life.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=si,categories=datafleet
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`
// +kubebuilder:printcolumn:name="Support",type=string,JSONPath=`.status.conditions[?(@.type=="VersionSupported")].reason`
// +kubebuilder:printcolumn:name="Plan",type=string,JSONPath=`.spec.plan`,priority=1
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Primary",type=string,JSONPath=`.status.currentPrimary`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.replicas`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=string,JSONPath=`.status.pendingRestarts[*].reason`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.synchronousReplicas) || self.spec.synchronousReplicas < (has(self.spec.replicas) ? self.spec.replicas : 1)",message="spec.synchronousReplicas must be less than spec.replicas: the primary does not count, and writes would wait forever"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="ServiceInstance names are at most 52 characters, so that the names of its pods and services fit Kubernetes limits"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="ServiceInstance names must start with a lowercase letter and contain only lowercase letters, digits and '-', because they become Service DNS names"
type ServiceInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ServiceInstanceSpec   `json:"spec"`
	Status ServiceInstanceStatus `json:"status,omitempty"`
}

// ServiceInstanceList is a list of ServiceInstances.
// +kubebuilder:object:root=true
type ServiceInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceInstance `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServiceInstance{}, &ServiceInstanceList{})
}

// DesiredReplicas returns spec.replicas, or 1 when it is unset (the reconciler fills it in from the
// instance's plan first).
func (in *ServiceInstance) DesiredReplicas() int32 {
	if in.Spec.Replicas == nil {
		return 1
	}
	return *in.Spec.Replicas
}

// TLSEnabled is spec.tls.enabled: the instance serves TLS with a certificate of its own CA.
func (in *ServiceInstance) TLSEnabled() bool { return in.Spec.TLS != nil && in.Spec.TLS.Enabled }

// TLSRequired is spec.tls.required on an instance that serves TLS: it serves nothing in clear.
func (in *ServiceInstance) TLSRequired() bool { return in.TLSEnabled() && in.Spec.TLS.Required }

// PriorityClassName is the PriorityClass the instance's pods are to have, "" for none.
func (in *ServiceInstance) PriorityClassName() string {
	if in.Spec.Scheduling == nil {
		return ""
	}
	return in.Spec.Scheduling.PriorityClassName
}

// Continuous is the instance's continuous archiving, nil when it is off.
func (in *ServiceInstance) Continuous() *ContinuousArchiving {
	if in.Spec.Backup == nil {
		return nil
	}
	return in.Spec.Backup.Continuous
}
