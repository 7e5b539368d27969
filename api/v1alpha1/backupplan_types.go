package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupRetention says which backups a plan keeps. Both limits apply; the newest good backup is
// always kept.
// +kubebuilder:validation:XValidation:rule="has(self.count) || has(self.maxAge)",message="retention needs count, maxAge or both"
type BackupRetention struct {
	// count of completed backups to keep.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Count *int32 `json:"count,omitempty"`
	// maxAge of backups to keep, for example 720h.
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// BackupPlanSpec schedules backups of an instance.
type BackupPlanSpec struct {
	// instanceRef names the ServiceInstance, in the plan's namespace.
	InstanceRef LocalObjectReference `json:"instanceRef"`
	// storeRef names the BackupStore; defaults to the instance's spec.backup.storeRef.
	// +optional
	StoreRef *LocalObjectReference `json:"storeRef,omitempty"`
	// schedule in cron syntax (five fields), for example "0 3 * * *".
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() == 5",message="schedule must be a cron expression with five fields: minute hour day-of-month month day-of-week"
	Schedule string `json:"schedule"`
	// timeZone of the schedule, an IANA name such as Europe/Paris; UTC when omitted.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
	// method of the plan's backups (a Backup's spec.method): Logical, the default, or Physical.
	// +optional
	Method BackupMethod `json:"method,omitempty"`
	// retention of completed backups.
	// +optional
	Retention *BackupRetention `json:"retention,omitempty"`
	// suspend stops new backups from being scheduled; pruning continues.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// drill periodically restores the latest completed backup into a scratch instance, checks
	// what was restored against what the backup recorded (row counts, definitions), records the
	// result in status.lastDrill and deletes the scratch instance. A physical plan of an instance
	// with continuous archiving drills to a point in time between two marker rows the operator
	// writes, and records the recovery point and time it achieved.
	// +optional
	Drill *BackupDrill `json:"drill,omitempty"`
}

// BackupDrill schedules verification drills.
type BackupDrill struct {
	// schedule of the drills in cron syntax (five fields), in the plan's time zone.
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.split(' ').filter(f, f != '').size() == 5",message="schedule must be a cron expression with five fields: minute hour day-of-month month day-of-week"
	Schedule string `json:"schedule"`
}

// DrillStatus is the outcome of a verification drill.
type DrillStatus struct {
	// backup that was restored.
	Backup string `json:"backup"`
	// restore that carried the drill out.
	Restore string `json:"restore"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// result: Running, Passed or Failed.
	// +kubebuilder:validation:Enum=Running;Passed;Failed
	Result string `json:"result"`
	// message says what was checked, or why the drill failed.
	// +optional
	Message string `json:"message,omitempty"`
	// targetTime is the point in time a point-in-time drill restored to (a physical plan of an
	// instance with continuous archiving): the operator wrote one marker on the instance just
	// before it and one just after, and the drill passes only if the restored instance holds the
	// first and not the second.
	// +optional
	TargetTime *metav1.Time `json:"targetTime,omitempty"`
	// recoveryPoint is the data-loss window a point-in-time drill achieved (RPO): how long after
	// the target the instance's archive was first seen to hold it (the first reading of the
	// instance's status.recoverableWindow that included it; an upper bound).
	// +optional
	RecoveryPoint *metav1.Duration `json:"recoveryPoint,omitempty"`
	// recoveryTime is the measured restore time (RTO): from the start of the recovery (the
	// restored instance made) until the instance was ready.
	// +optional
	RecoveryTime *metav1.Duration `json:"recoveryTime,omitempty"`
}

// BackupPlanStatus is what the operator observed.
type BackupPlanStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// +optional
	LastSuccessfulBackup string `json:"lastSuccessfulBackup,omitempty"`
	// lastDrillScheduleTime is the last drill slot acted on.
	// +optional
	LastDrillScheduleTime *metav1.Time `json:"lastDrillScheduleTime,omitempty"`
	// lastDrill is the latest verification drill.
	// +optional
	LastDrill *DrillStatus `json:"lastDrill,omitempty"`
}

// BackupPlan takes backups of an instance on a schedule and prunes old ones.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bp,categories=datafleet
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.spec.instanceRef.name`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Drill",type=string,JSONPath=`.status.lastDrill.result`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupPlan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   BackupPlanSpec   `json:"spec"`
	Status BackupPlanStatus `json:"status,omitempty"`
}

// BackupPlanList is a list of BackupPlans.
// +kubebuilder:object:root=true
type BackupPlanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupPlan `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BackupPlan{}, &BackupPlanList{})
}
