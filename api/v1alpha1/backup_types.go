package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupPhase summarises a backup's progress.
// +kubebuilder:validation:Enum=Pending;Running;Completed;Failed
type BackupPhase string

// Backup phases.
const (
	BackupPending   BackupPhase = "Pending"
	BackupRunning   BackupPhase = "Running"
	BackupCompleted BackupPhase = "Completed"
	BackupFailed    BackupPhase = "Failed"
)

// RunStatus is the part of a Backup's and a Restore's status that its Job drives: both go
// Pending → Running → Completed or Failed the same way.
type RunStatus struct {
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// BackupMethod is how a backup takes the data.
// +kubebuilder:validation:Enum=Logical;Physical
type BackupMethod string

// Backup methods.
const (
	BackupLogical  BackupMethod = "Logical"
	BackupPhysical BackupMethod = "Physical"
)

// BackupSpec asks for one backup of an instance. Immutable once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Backup's spec is immutable: create a new Backup instead"
// +kubebuilder:validation:XValidation:rule="!has(self.import) || has(self.storeRef)",message="an imported Backup names its store: set spec.storeRef"
type BackupSpec struct {
	// instanceRef names the ServiceInstance to back up, in the Backup's namespace.
	InstanceRef LocalObjectReference `json:"instanceRef"`
	// storeRef names the BackupStore; defaults to the instance's spec.backup.storeRef.
	// +optional
	StoreRef *LocalObjectReference `json:"storeRef,omitempty"`
	// method is how the data is taken: Logical (the default), the engine's own dump, restorable
	// into any later version; or Physical, a copy of the data files (PostgreSQL's base backup,
	// from a replica when there is one) onto which a restore replays the continuous archive, so
	// it needs spec.backup.continuous on the instance.
	// +optional
	Method BackupMethod `json:"method,omitempty"`
	// hold keeps this backup from ever being pruned by a BackupPlan's retention.
	// +optional
	Hold bool `json:"hold,omitempty"`
	// timeout bounds the backup's Job, from its start: past it the Job is stopped and the backup
	// fails with DeadlineExceeded, whatever it was waiting for. 6h when omitted; a BackupPlan's
	// backups end before the plan's next slot.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// import makes this Backup stand for a backup already in the store (BackupStore
	// spec.importBackups creates such Backups): no Job runs, the operator checks the backup's
	// manifest, and deleting the Backup leaves its objects in the store. Needs spec.storeRef.
	// +optional
	Import *BackupImport `json:"import,omitempty"`
}

// BackupImport names a backup in a store.
type BackupImport struct {
	// path is the backup's directory under the store's prefix: namespace/instance/backup, as the
	// cluster that took it wrote it.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$`
	Path string `json:"path"`
}

// BackupStatus is what the operator observed.
type BackupStatus struct {
	RunStatus `json:",inline"`
	// path is the backup's directory under the store's prefix, recorded when its Job starts
	// (namespace/instance/backup-time: no UID, so that another cluster can import it).
	// +optional
	Path string `json:"path,omitempty"`
	// location of the backup's manifest in the store.
	// +optional
	Location string `json:"location,omitempty"`
	// store is the BackupStore the backup is written to, recorded when its Job starts: restores
	// and deletion use it from then on, whatever the instance (or its absence) says later.
	// +optional
	Store string `json:"store,omitempty"`
	// sizeBytes of the stored artefact.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// engineVersion of the instance when it was backed up.
	// +optional
	EngineVersion string `json:"engineVersion,omitempty"`
	// sha256 of the stored artefact, as its manifest records it.
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// encrypted is true when the artefact is encrypted with the store's key.
	// +optional
	Encrypted bool `json:"encrypted,omitempty"`
}

// Backup is one backup of a ServiceInstance in a BackupStore.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bk,categories=datafleet
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.spec.instanceRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.status.sizeBytes`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   BackupSpec   `json:"spec"`
	Status BackupStatus `json:"status,omitempty"`
}

// BackupList is a list of Backups.
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Backup{}, &BackupList{})
}
