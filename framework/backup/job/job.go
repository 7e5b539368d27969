// Package job is the backup and restore Job: its pure builder, which the controllers apply, and
// Run, which the operator's binary executes inside it ("manager backup dump|load"). The Job
// streams between the engine (engine.Backuper) and the store, so neither the operator's memory
// nor its restarts are in the data's path, and it needs no access to the Kubernetes API: what it
// works on comes in its arguments and environment.
package job

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// Modes of the Job.
const (
	ModeDump = "dump"
	ModeLoad = "load"
)

// Environment the Job reads besides the store's credentials and the engine's variables.
const (
	EnvInstance = "DATAFLEET_INSTANCE" // the instance as JSON: name, namespace, spec
	// EnvCredentialsSecret names the store's credentials Secret, when it has one: with none of its
	// keys set (an empty Secret) the Job still does not fall back to ambient credentials.
	EnvCredentialsSecret = "DATAFLEET_STORE_CREDENTIALS_SECRET"
	EnvKey               = "DATAFLEET_BACKUP_KEY"
)

// Labels on backup Jobs and their pods. Not the instance's labels: those select its pods.
const (
	ComponentBackup  = "backup"
	ComponentRestore = "restore"
	OwnerLabel       = "datafleet.dev/owner" // the Backup's or Restore's name
)

// uid runs the Job as an unprivileged user; the binary needs no files of its own.
const uid = 65532

// Input is what a Job is built from.
type Input struct {
	Name, Namespace string
	Mode            string
	// Component and Owner label the Job (ComponentBackup or ComponentRestore, and its object's name).
	Component, Owner string
	Image            string
	Engine           string
	// Instance is backed up (dump) or restored into (load).
	Instance *v1alpha1.ServiceInstance
	// Version is the instance's version: recorded in a dump's manifest, compared with it on a load.
	Version string
	Store   *v1alpha1.BackupStore
	// Dir is the backup's directory, relative to the store's prefix.
	Dir    string
	Backup string
	// EngineEnv is the engine's BackupEnv.
	EngineEnv []corev1.EnvVar
	// Deadline bounds the Job (activeDeadlineSeconds); 0: none.
	Deadline time.Duration
	// Method of a dump: backup.MethodPhysical for a base backup; empty or Logical: the engine's dump.
	Method string
}

// instanceJSON is what the Job learns of the instance.
func instanceJSON(inst *v1alpha1.ServiceInstance) string {
	b, _ := json.Marshal(&v1alpha1.ServiceInstance{
		ObjectMeta: metav1.ObjectMeta{Name: inst.Name, Namespace: inst.Namespace},
		Spec:       inst.Spec,
	})
	return string(b)
}

// Build returns the Job. It is a pure function of its input. A failed pod is not retried: a
// dump is repeated by a new Backup, and a restore should be looked at before it is tried again.
func Build(in Input) *batchv1.Job {
	labels := map[string]string{
		names.ManagedByLabel: names.ManagedBy, names.PartOfLabel: "datafleet",
		names.ComponentLabel: in.Component, names.EngineLabel: in.Engine, OwnerLabel: in.Owner,
	}
	args := []string{"backup", in.Mode, "--engine", in.Engine, "--store-url", in.Store.Spec.URL,
		"--store-prefix", in.Store.Spec.Prefix, "--dir", in.Dir, "--version", in.Version, "--backup", in.Backup}
	if in.Method == backup.MethodPhysical {
		args = append(args, "--method", in.Method)
	}
	var deadline *int64
	if in.Deadline > 0 {
		args = append(args, "--deadline", in.Deadline.String())
		deadline = ptr.To(int64(in.Deadline.Seconds()))
	}
	env := []corev1.EnvVar{{Name: EnvInstance, Value: instanceJSON(in.Instance)}}
	if e := in.Store.Spec.Encryption; e != nil {
		env = append(env, workload.SecretEnv(EnvKey, e.KeySecretRef.Name, e.KeySecretRef.Key))
	}
	env = append(env, in.EngineEnv...)
	if ref := in.Store.Spec.CredentialsSecretRef; ref != nil {
		env = append(env, corev1.EnvVar{Name: EnvCredentialsSecret, Value: ref.Name})
		// The keys a store reads, each optional, and nothing else: the Secret is the tenant's, and
		// all of it as the environment (envFrom) would let any variable in, HTTPS_PROXY sending
		// the Job's store traffic around the platform's allowed endpoints among them.
		for _, k := range store.CredentialKeys {
			v := workload.SecretEnv(k, ref.Name, k)
			v.ValueFrom.SecretKeyRef.Optional = ptr.To(true)
			env = append(env, v)
		}
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: in.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: deadline,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext:              workload.RestrictedPod(uid),
					Containers: []corev1.Container{{
						Name:    in.Mode,
						Image:   in.Image,
						Command: []string{"/manager"},
						Args:    args,
						Env:     env,
						// The stream holds a few buffers whatever the data's size: the limit is
						// the proof, an out-of-memory kill the alarm.
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						SecurityContext:          workload.RestrictedContainer(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
				},
			},
		},
	}
	// On the nodes, and with the priority, the instance's pods have: nodes set aside for data
	// (a taint the Job tolerates) are often the only ones its namespace may use.
	workload.ScheduleJob(&job.Spec.Template.Spec, in.Instance.Spec.Scheduling)
	return job
}

// Result is what Run reports through the container's termination message.
type Result struct {
	// Reason is a CamelCase word for the Ready condition.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Reasons a Job reports.
const (
	ReasonCompleted        = "Completed"
	ReasonDumpFailed       = "DumpFailed"
	ReasonLoadFailed       = "LoadFailed"
	ReasonStoreUnreachable = "StoreUnreachable"
	ReasonIncomplete       = "BackupIncomplete"
	ReasonChecksumMismatch = "ChecksumMismatch"
	ReasonWrongKey         = "WrongEncryptionKey"
	ReasonUnauthenticated  = "Unauthenticated"
	ReasonDeadlineExceeded = "DeadlineExceeded"
	ReasonVersionDowngrade = "VersionDowngrade"
	ReasonEngineMismatch   = "EngineMismatch"
	ReasonInvalid          = "InvalidJob"
	ReasonPhysical         = "PhysicalBackup"
)

// ParseResult reads a finished pod's result; a message that is not a Result (the log's tail, when
// the binary could not even start) is kept as the message.
func ParseResult(pod *corev1.Pod) (Result, bool) {
	for _, cs := range pod.Status.ContainerStatuses {
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(t.Message), &r); err == nil && r.Reason != "" {
			return r, true
		}
		msg := strings.TrimSpace(t.Message)
		if msg == "" {
			msg = fmt.Sprintf("the container ended with exit code %d (%s)", t.ExitCode, t.Reason)
		}
		reason := ReasonDumpFailed
		if cs.Name == ModeLoad {
			reason = ReasonLoadFailed
		}
		if t.ExitCode == 0 {
			reason = ReasonCompleted
		}
		return Result{Reason: reason, Message: msg}, true
	}
	return Result{}, false
}
