package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServicePlanSpec is a named size for one engine.
type ServicePlanSpec struct {
	// engine this plan applies to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	Engine string `json:"engine"`
	// replicas instances on this plan get unless they say otherwise.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Replicas *int32 `json:"replicas,omitempty"`
	// resources of each engine container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// storageSize of each replica.
	// +optional
	StorageSize *resource.Quantity `json:"storageSize,omitempty"`
	// allowedTransitions lists the plans an instance on this plan may move to.
	// +optional
	// +listType=set
	AllowedTransitions []string `json:"allowedTransitions,omitempty"`
}

// ServicePlan is a named size (resources, storage, replicas) that instances reference.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sp,categories=datafleet
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Storage",type=string,JSONPath=`.spec.storageSize`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServicePlan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ServicePlanSpec `json:"spec"`
}

// ServicePlanList is a list of ServicePlans.
// +kubebuilder:object:root=true
type ServicePlanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServicePlan `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServicePlan{}, &ServicePlanList{})
}
