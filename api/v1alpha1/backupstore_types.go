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
	// credentialsSecretRef names a Secret with the store's credentials: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN) for s3://,
	// GOOGLE_APPLICATION_CREDENTIALS_JSON (a service account key) for gs://, or
	// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN for azblob://.
	// Without it the provider's ambient credentials apply (workload identity), where the platform
	// allows them; with it they never do, even if the Secret lacks the keys.
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
	// encryption encrypts every backup written to this store before it leaves the cluster
	// (AES-256-GCM), with a key from a Secret. Restores need the same key: keep a copy of it
	// outside the cluster.
	// +optional
	Encryption *BackupEncryption `json:"encryption,omitempty"`
	// importBackups makes the operator list the store and create a Backup, in this namespace,
	// for every backup it holds that no Backup here names: another cluster's, or this cluster's
	// after its Backup objects were lost, so that a Restore can use them. Only in the namespaces
	// the platform allows (the operator's setting backupStores.importNamespaces). Deleting an
	// imported Backup leaves its objects in the store.
	// +optional
	ImportBackups bool `json:"importBackups,omitempty"`
}

// BackupEncryption names the key backups are encrypted with.
type BackupEncryption struct {
	// keySecretRef is a key of a Secret in the store's namespace holding at least 16 random
	// bytes, for example from `openssl rand -base64 32`.
	KeySecretRef SecretKeyReference `json:"keySecretRef"`
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
	// imported is how many Backups the last listing of the store created, with spec.importBackups.
	// +optional
	Imported int32 `json:"imported,omitempty"`
	// lastImportTime is when the store was last listed for backups to import.
	// +optional
	LastImportTime *metav1.Time `json:"lastImportTime,omitempty"`
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
