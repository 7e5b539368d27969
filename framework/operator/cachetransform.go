package operator

import (
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// trimPods is the cache's transform for Pods: it keeps what the operator reads of a pod and drops
// the rest of its spec, which was the largest part of a cached pod (docs/scale.md). A pod is
// read from the cache for its metadata (names, labels, annotations, UID, timestamps), its
// status (phase, IP, readiness, the containers' states, a Job pod's termination message) and
// of its spec only for the Secrets' volumes (the agent's TLS volume, which Secret a volume
// mounts), the init containers' names and images (the agent's) and the containers' names and
// images, in their order (the engine's container is the first). Nothing compares, hashes or
// writes back a whole pod: pods are only patched (labels, annotations) from two copies of the
// cached one and deleted by UID. Code that needs another field of a pod reads it past the
// cache (the APIReader).
func trimPods() toolscache.TransformFunc {
	stripManagedFields := cache.TransformStripManagedFields()
	return func(in any) (any, error) {
		in, err := stripManagedFields(in)
		if err != nil {
			return in, err
		}
		if pod, ok := in.(*corev1.Pod); ok {
			pod.Spec = trimmedPodSpec(&pod.Spec)
		}
		return in, nil
	}
}

// trimmedPodSpec is the part of spec that trimPods keeps.
func trimmedPodSpec(spec *corev1.PodSpec) corev1.PodSpec {
	return corev1.PodSpec{
		Volumes:        trimmedVolumes(spec.Volumes),
		InitContainers: namesAndImages(spec.InitContainers),
		Containers:     namesAndImages(spec.Containers),
	}
}

// trimmedVolumes keeps the Secrets' volumes, each with its name and its Secret's: a Volume is
// large (a pointer for every kind of source), and only these are looked at.
func trimmedVolumes(volumes []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range volumes {
		if v.Secret != nil {
			out = append(out, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: v.Secret.SecretName}}})
		}
	}
	return out
}

func namesAndImages(containers []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, len(containers))
	for i, c := range containers {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image}
	}
	return out
}
