package workload

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// Where a pod of an instance with continuous archiving finds its archive: the segment command's
// configuration (ArchiveConfigFile, from the ConfigMap ArchiveConfigMap renders), the store's
// credentials Secret and its encryption key, each mounted read-only. Secrets are mounted rather
// than copied, so that the tenant's rotation of either reaches the next segment without a restart.
const (
	ArchiveMount       = "/datafleet/archive"
	ArchiveConfigFile  = ArchiveMount + "/config/" + archiveConfigKey
	archiveConfigKey   = "segments.json"
	archiveCredentials = ArchiveMount + "/credentials"
	archiveKeyFile     = ArchiveMount + "/key/key"
)

// ArchiveConfigMapName is the ConfigMap holding an instance's ArchiveConfigFile.
func ArchiveConfigMapName(inst *v1alpha1.ServiceInstance) string {
	return names.Child(inst.Name, "archive", names.MaxDNSLabel)
}

// ArchiveConfigMap is the segment command's configuration (backup.SegmentConfig) for the
// archive in store under dir: the store's URL and prefix (no secret: the policy refuses
// credentials in URLs), the directory, and where the Secrets are mounted.
func ArchiveConfigMap(inst *v1alpha1.ServiceInstance, store *v1alpha1.BackupStore, dir string) *corev1.ConfigMap {
	c := backup.SegmentConfig{URL: store.Spec.URL, Prefix: store.Spec.Prefix, Dir: dir}
	if store.Spec.CredentialsSecretRef != nil {
		c.CredentialsDir = archiveCredentials
	}
	if store.Spec.Encryption != nil {
		c.KeyFile = archiveKeyFile
	}
	b, _ := json.Marshal(c)
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ArchiveConfigMapName(inst)},
		Data:       map[string]string{archiveConfigKey: string(b)},
	}
}

// ArchiveVolumes mount the archive's configuration and Secrets in the engine's container.
func ArchiveVolumes(inst *v1alpha1.ServiceInstance, store *v1alpha1.BackupStore) ([]corev1.VolumeMount, []corev1.Volume) {
	mounts := []corev1.VolumeMount{{Name: "archive-config", MountPath: ArchiveMount + "/config", ReadOnly: true}}
	volumes := []corev1.Volume{ConfigMapVolume("archive-config", ArchiveConfigMapName(inst))}
	if ref := store.Spec.CredentialsSecretRef; ref != nil {
		mounts = append(mounts, corev1.VolumeMount{Name: "archive-credentials", MountPath: archiveCredentials, ReadOnly: true})
		volumes = append(volumes, SecretVolume("archive-credentials", ref.Name))
	}
	if e := store.Spec.Encryption; e != nil {
		mounts = append(mounts, corev1.VolumeMount{Name: "archive-key", MountPath: ArchiveMount + "/key", ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "archive-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: e.KeySecretRef.Name, DefaultMode: ptr.To[int32](0o440),
			Items: []corev1.KeyToPath{{Key: e.KeySecretRef.Key, Path: "key"}}}}})
	}
	return mounts, volumes
}

// A new instance restored to a point in time from a physical backup (a Restore of one) carries
// RecoveryAnnotation from its creation, and its pods mount the Secret RecoverySecretName, which the
// Restore writes before it creates the instance and deletes once the instance is Ready: the
// recovery's configuration (backup.RecoveryConfig) and copies of the store's credentials and key,
// flat in one volume. The mount is optional and the annotation never changes, so the pod template
// stays the same when the Secret goes; the agent reads it only when it has no data yet.
//
// A physical backup restored in place is the same Secret, naming the restore (its InPlace), and
// the same annotation, added to the existing instance (its pods restart once for it, and never
// again: it stays), with InPlaceRecoveryAnnotation naming the restore while it runs. Every pod that
// ran before the Secret existed is restarted (RestartedFor), so that no member serves or copies
// the old data once the recovery begins.
const (
	RecoveryAnnotation = "datafleet.dev/recover-from-store"
	RecoveryMount      = "/datafleet/recovery"
	RecoveryConfigKey  = "recovery.json"
	RecoveryKeyKey     = "encryption-key"
	RecoveryConfigFile = RecoveryMount + "/" + RecoveryConfigKey
	RecoveryKeyFile    = RecoveryMount + "/" + RecoveryKeyKey
	recoveryVolumeName = "recovery"
)

// InPlaceRecoveryAnnotation names the in-place restore (the Restore's UID) an instance's members
// are recovering from the store, from its start to its completion.
const InPlaceRecoveryAnnotation = "datafleet.dev/recover-in-place"

// RecoverySecretName is the Secret of an instance's recovery.
func RecoverySecretName(inst *v1alpha1.ServiceInstance) string {
	return names.Child(inst.Name, "recovery", names.MaxDNSLabel)
}

// Recovers reports whether the instance is created by a restore to a point in time.
func Recovers(inst *v1alpha1.ServiceInstance) bool { return inst.Annotations[RecoveryAnnotation] != "" }

// RecoveryVolume mounts the instance's recovery Secret, optional (it goes once the instance is
// Ready), read-only.
func RecoveryVolume(inst *v1alpha1.ServiceInstance) (corev1.VolumeMount, corev1.Volume) {
	return corev1.VolumeMount{Name: recoveryVolumeName, MountPath: RecoveryMount, ReadOnly: true},
		corev1.Volume{Name: recoveryVolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: RecoverySecretName(inst), DefaultMode: ptr.To[int32](0o440), Optional: ptr.To(true)}}}
}

// RestartedFor reports whether the pod started after the recovery's Secret was written and mounts
// it: its agent reads that recovery when it bootstraps. (Creation times have whole seconds: a pod
// created in the second the Secret was, before it, would count as restarted; the Restore writes the
// Secret before it changes anything that makes pods.)
func RestartedFor(pod *corev1.Pod, secret *corev1.Secret) bool {
	return !pod.CreationTimestamp.Before(&secret.CreationTimestamp) && MountsSecret(pod.Spec.Volumes, secret.Name)
}

// MountsSecret reports whether one of the volumes is the Secret name.
func MountsSecret(volumes []corev1.Volume, name string) bool {
	for _, v := range volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
	}
	return false
}

// NotRestartedFor names the pods that have not restarted for the recovery's Secret (RestartedFor).
func NotRestartedFor(pods []corev1.Pod, secret *corev1.Secret) []string {
	var old []string
	for i := range pods {
		if !RestartedFor(&pods[i], secret) {
			old = append(old, pods[i].Name)
		}
	}
	return old
}
