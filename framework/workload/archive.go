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
