package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BindingRole is the access a binding's user gets.
// +kubebuilder:validation:Enum=admin;readWrite;readOnly
type BindingRole string

// Binding roles.
const (
	RoleAdmin     BindingRole = "admin"
	RoleReadWrite BindingRole = "readWrite"
	RoleReadOnly  BindingRole = "readOnly"
)

// BindingRoles are all the roles, most privileged first.
func BindingRoles() []BindingRole { return []BindingRole{RoleAdmin, RoleReadWrite, RoleReadOnly} }

// CredentialRotation asks for new credentials.
type CredentialRotation struct {
	// generation: raising it creates a new user with a new password and publishes both in the
	// Secret; the previous user keeps working for overlap, then it is dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=999999
	Generation int64 `json:"generation,omitempty"`
	// overlap is how long the previous credentials stay valid after a rotation: long enough for
	// every application to read the new Secret and reconnect. Default 1h.
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
}

// ServiceBindingSpec asks for a dedicated user on an instance and a Secret that an application mounts.
// +kubebuilder:validation:XValidation:rule="!(has(self.database) && has(self.vhost))",message="set at most one of database (PostgreSQL, MongoDB) and vhost (RabbitMQ)"
// +kubebuilder:validation:XValidation:rule="has(self.database) == has(oldSelf.database) && has(self.vhost) == has(oldSelf.vhost)",message="database and vhost cannot be added or removed: create a new binding"
type ServiceBindingSpec struct {
	// instanceRef names the ServiceInstance to bind to. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="instanceRef is immutable: create a new binding for another instance"
	InstanceRef InstanceReference `json:"instanceRef"`
	// role of the binding's user. Immutable.
	// +optional
	// +kubebuilder:default=readWrite
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="role is immutable: create a new binding with the other role"
	Role BindingRole `json:"role,omitempty"`
	// database the user is granted access to (PostgreSQL, MongoDB); created if it does not exist.
	// Default "app". Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="database is immutable: create a new binding for another database"
	Database string `json:"database,omitempty"`
	// vhost the user is granted permissions on (RabbitMQ); created if it does not exist.
	// Default "/". Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="vhost is immutable: create a new binding for another vhost"
	// +kubebuilder:validation:XValidation:rule="self == '/' || !self.matches('(^|/)([.]{1,2})?(/|$)')",message="vhost is not a vhost name: its /-separated segments may not be empty, \".\" or \"..\""
	Vhost string `json:"vhost,omitempty"`
	// secretName of the Secret to write; defaults to the binding's name. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable: applications mount it by name"
	SecretName string `json:"secretName,omitempty"`
	// rotation asks for new credentials.
	// +optional
	Rotation *CredentialRotation `json:"rotation,omitempty"`
}

// BindingSecretReference follows the servicebinding.io Provisioned Service duck type.
type BindingSecretReference struct {
	// name of the Secret holding the binding.
	Name string `json:"name"`
}

// ServiceBindingStatus is what the operator observed.
type ServiceBindingStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// binding names the Secret, as servicebinding.io runtimes expect.
	// +optional
	Binding *BindingSecretReference `json:"binding,omitempty"`
	// credentialGeneration is the rotation generation whose credentials the Secret holds.
	// +optional
	CredentialGeneration int64 `json:"credentialGeneration,omitempty"`
	// credentialsIssued is when the Secret's current credentials were first reported ready: the
	// binding's first, or its last rotation. The age of a binding's password is measured from it.
	// +optional
	CredentialsIssued *metav1.Time `json:"credentialsIssued,omitempty"`
	// previousCredentialsExpire is when the credentials replaced by the last rotation stop
	// working; unset once they are revoked.
	// +optional
	PreviousCredentialsExpire *metav1.Time `json:"previousCredentialsExpire,omitempty"`
}

// ServiceBinding gives an application its own user on a ServiceInstance and a Secret in the
// servicebinding.io format.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sb,categories=datafleet
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.spec.instanceRef.name`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.binding.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ServiceBindingSpec   `json:"spec"`
	Status ServiceBindingStatus `json:"status,omitempty"`
}

// ServiceBindingList is a list of ServiceBindings.
// +kubebuilder:object:root=true
type ServiceBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceBinding `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServiceBinding{}, &ServiceBindingList{})
}
