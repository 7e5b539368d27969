package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupStoreSpec is an object store reached through gocloud.dev/blob.
type BackupStoreSpec struct {
	// url of the bucket, as gocloud.dev/blob understands it: s3://bucket?endpoint=...&region=...,
	// gs://bucket, azblob://container, file:///path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(s3|gs|azblob|file|mem)://')",message="url must start with s3://, gs://, azblob://, file:// or mem://"
	URL string `json:"url"`
	// prefix under which all objects are written.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Prefix string `json:"prefix,omitempty"`
	// credentialsSecretRef names a Secret whose keys become the provider's environment
	// (for example AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
}

// BackupStoreStatus is what the operator observed.
type BackupStoreStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready is True when a probe object could be written, read and deleted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BackupStore is an object store that backups are written to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bs,categories=datafleet
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   BackupStoreSpec   `json:"spec"`
	Status BackupStoreStatus `json:"status,omitempty"`
}

// BackupStoreList is a list of BackupStores.
// +kubebuilder:object:root=true
type BackupStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupStore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BackupStore{}, &BackupStoreList{})
}
