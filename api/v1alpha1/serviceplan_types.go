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
	// allowedTransitions lists the plans an instance on this plan may move to (for example only
	// larger ones). An instance cannot move to a plan not listed, nor leave its plan.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	AllowedTransitions []string `json:"allowedTransitions,omitempty"`
	// limits bound what an instance on this plan may set for itself instead of the plan's values.
	// A field without a limit may not go above the plan's own value.
	// +optional
	Limits *PlanLimits `json:"limits,omitempty"`
}

// PlanLimits bound an instance's own replicas, storage and resources.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="limits.minReplicas must not exceed limits.maxReplicas"
type PlanLimits struct {
	// minReplicas an instance may ask for.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// maxReplicas an instance may ask for.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// maxStorageSize of each replica's volume.
	// +optional
	MaxStorageSize *resource.Quantity `json:"maxStorageSize,omitempty"`
	// maxResources caps every request and limit of the engine container, per resource name.
	// +optional
	MaxResources corev1.ResourceList `json:"maxResources,omitempty"`
}

// ServicePlan is a named size (resources, storage, replicas) that instances reference.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sp,categories=datafleet
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Storage",type=string,JSONPath=`.spec.storageSize`
// +kubebuilder:printcolumn:name="Transitions",type=string,JSONPath=`.spec.allowedTransitions`,priority=1
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
