// Package v1alpha1 holds the Datafleet API: group datafleet.dev, version v1alpha1.
//
// +kubebuilder:object:generate=true
// +groupName=datafleet.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Datafleet kind.
	GroupVersion = schema.GroupVersion{Group: "datafleet.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Datafleet kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Datafleet kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
