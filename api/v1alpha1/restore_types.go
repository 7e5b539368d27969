package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestoreTarget is where a backup is restored: a new instance, or the backed-up instance itself.
// +kubebuilder:validation:XValidation:rule="has(self.newInstance) != has(self.inPlace)",message="set exactly one of target.newInstance and target.inPlace"
type RestoreTarget struct {
	// newInstance restores into a new ServiceInstance, created from the backed-up instance's spec
	// (the usual path; also used for clones and major upgrades).
	// +optional
	NewInstance *NewInstanceTarget `json:"newInstance,omitempty"`
	// inPlace overwrites the data of the backed-up instance.
	// +optional
	InPlace *InPlaceRestore `json:"inPlace,omitempty"`
}

// NewInstanceTarget is the instance a Restore creates.
type NewInstanceTarget struct {
	// name of the new ServiceInstance, in the Restore's namespace. It must not exist yet.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// version of the new instance; defaults to the backed-up instance's. A newer version moves
	// the data across a major upgrade; an older one than the backup's is refused.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`
}

// InPlaceRestore overwrites an instance's data and needs an explicit confirmation.
type InPlaceRestore struct {
	// confirm must equal the name of the instance being overwritten.
	// +kubebuilder:validation:MinLength=1
	Confirm string `json:"confirm"`
}

// RestoreSpec asks for a backup to be restored. Immutable once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Restore's spec is immutable: create a new Restore instead"
// +kubebuilder:validation:XValidation:rule="!(has(self.targetTime) && has(self.targetLSN))",message="a restore has one target: set targetTime or targetLSN, not both"
type RestoreSpec struct {
	// backupRef names the Backup to restore, in the Restore's namespace.
	BackupRef LocalObjectReference `json:"backupRef"`
	// target of the restore.
	Target RestoreTarget `json:"target"`
	// targetTime, for a physical backup (a Backup with method Physical), is the point in time the
	// instance (new, or in place) is restored to: the backup plus the instance's archived log up
	// to it. Omitted, the whole archive is replayed. It must be after the backup completed.
	// +optional
	TargetTime *metav1.Time `json:"targetTime,omitempty"`
	// targetLSN, for a physical backup of PostgreSQL, is the position in the write-ahead log the
	// instance is restored to (as pg_current_wal_lsn() prints it, "0/3000060"), instead of a
	// time: replay stops after the record at it.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`
	TargetLSN string `json:"targetLSN,omitempty"`
	// timeout bounds the restore's Job, from its start: past it the Job is stopped and the
	// restore fails with DeadlineExceeded. 12h when omitted. A stopped restore leaves the
	// existing data as it was (it replaces nothing until everything is loaded and checked).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// RestoreStatus is what the operator observed.
type RestoreStatus struct {
	RunStatus `json:",inline"`
	// instanceName is the instance the backup is restored into.
	// +optional
	InstanceName string `json:"instanceName,omitempty"`
}

// Restore brings a Backup back into a new or the same ServiceInstance.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rst,categories=datafleet
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.spec.backupRef.name`
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.status.instanceName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Restore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   RestoreSpec   `json:"spec"`
	Status RestoreStatus `json:"status,omitempty"`
}

// RestoreList is a list of Restores.
// +kubebuilder:object:root=true
type RestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Restore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Restore{}, &RestoreList{})
}
