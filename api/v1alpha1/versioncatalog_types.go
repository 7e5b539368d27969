package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CatalogVersion is one version an engine is offered in.
// +kubebuilder:validation:XValidation:rule="!has(self.upgrades) || self.upgrades.all(u, u.to != self.version)",message="an upgrade path cannot lead to its own version"
type CatalogVersion struct {
	// version as users write it in spec.version, for example "15" or "3.10".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`
	Version string `json:"version"`
	// image that runs this version.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`
	// default marks the version used when an instance omits spec.version. At most one.
	// +optional
	Default bool `json:"default,omitempty"`
	// sunrise: new instances are refused before this time.
	// +optional
	Sunrise *metav1.Time `json:"sunrise,omitempty"`
	// sundown: new instances are refused after this time; existing ones keep running and are
	// told so in their VersionSupported condition.
	// +optional
	Sundown *metav1.Time `json:"sundown,omitempty"`
	// upgrades lists the versions an instance on this version may move to, and how.
	// +optional
	// +listType=map
	// +listMapKey=to
	// +kubebuilder:validation:MaxItems=64
	Upgrades []UpgradePath `json:"upgrades,omitempty"`
}

// UpgradeMethod says how an instance moves from one version to another.
// +kubebuilder:validation:Enum=InPlace;BlueGreen
type UpgradeMethod string

const (
	// UpgradeInPlace: changing spec.version rolls the instance's pods onto the new image.
	UpgradeInPlace UpgradeMethod = "InPlace"
	// UpgradeBlueGreen: the instance's spec.version cannot change to this version; a backup is
	// restored into a new instance on it (Restore, target.newInstance.version), clients move,
	// and the old instance is deleted.
	UpgradeBlueGreen UpgradeMethod = "BlueGreen"
)

// UpgradePath is one allowed move between versions.
type UpgradePath struct {
	// to is the target version.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	To string `json:"to"`
	// method: InPlace (the default) or BlueGreen.
	// +optional
	// +kubebuilder:default=InPlace
	Method UpgradeMethod `json:"method,omitempty"`
	// note is shown to whoever asks for this upgrade, for example why it is blue/green only.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Note string `json:"note,omitempty"`
}

// VersionCatalogSpec lists the versions of one engine.
// +kubebuilder:validation:XValidation:rule="self.versions.filter(v, has(v.default) && v.default).size() <= 1",message="at most one version may be the default"
// +kubebuilder:validation:XValidation:rule="self.versions.all(v, !has(v.sunrise) || !has(v.sundown) || timestamp(v.sunrise) < timestamp(v.sundown))",message="a version's sunrise must come before its sundown"
type VersionCatalogSpec struct {
	// engine these versions belong to; must equal the catalog's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	Engine string `json:"engine"`
	// versions offered.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=version
	Versions []CatalogVersion `json:"versions"`
	// warningDays before a sundown from which instances are warned.
	// +optional
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=0
	WarningDays int32 `json:"warningDays,omitempty"`
}

// VersionCatalogStatus is what the operator observed.
type VersionCatalogStatus struct {
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VersionCatalog is the platform team's list of versions of one engine, with their images and
// support windows. One per engine, named after it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=vc,categories=datafleet
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.spec.versions[?(@.default==true)].version`
// +kubebuilder:printcolumn:name="Warning Days",type=integer,JSONPath=`.spec.warningDays`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.engine",message="a VersionCatalog is named after its engine: metadata.name must equal spec.engine"
type VersionCatalog struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   VersionCatalogSpec   `json:"spec"`
	Status VersionCatalogStatus `json:"status,omitempty"`
}

// VersionCatalogList is a list of VersionCatalogs.
// +kubebuilder:object:root=true
type VersionCatalogList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VersionCatalog `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VersionCatalog{}, &VersionCatalogList{})
}
