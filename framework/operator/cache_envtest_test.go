package operator_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The manager's cache holds what Datafleet labelled, without the managed fields (a quarter of
// what it held at 1,000 instances, docs/scale.md), of a pod only what the operator reads, and
// nothing it did not label.
func TestTheCacheHoldsLabelledObjectsWithoutManagedFields(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	labelled := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ours",
		Labels: map[string]string{names.ManagedByLabel: names.ManagedBy}}, Data: map[string]string{"k": "v"}}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "theirs"}}
	for _, cm := range []*corev1.ConfigMap{labelled, other} {
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	pod := fullPod()
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	live := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(labelled), live); err != nil || len(live.ManagedFields) == 0 {
		t.Fatalf("the API server keeps no managed fields (%v): nothing to strip", err)
	}
	mgr, err := env.Manager([]engine.Engine{fakeengine.New()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	c := mgr.Manager.GetClient()
	got := &corev1.ConfigMap{}
	testenv.Eventually(t, 30*time.Second, func() error { return c.Get(ctx, client.ObjectKeyFromObject(labelled), got) })
	if got.Data["k"] != "v" || len(got.ManagedFields) != 0 {
		t.Fatalf("the cached ConfigMap: data %v, %d managed fields entries; want the data and none", got.Data, len(got.ManagedFields))
	}
	cachedPod := &corev1.Pod{}
	testenv.Eventually(t, 30*time.Second, func() error { return c.Get(ctx, client.ObjectKeyFromObject(pod), cachedPod) })
	checkTrimmed(t, pod, cachedPod)
	list := &corev1.ConfigMapList{}
	if err := c.List(ctx, list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if cm.Name == other.Name {
			t.Fatal("the cache holds a ConfigMap Datafleet did not label")
		}
	}
}

// fullPod is a labelled pod with every part of a spec the operator renders.
func fullPod() *corev1.Pod {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8008)}}}
	container := func(name string) corev1.Container {
		return corev1.Container{Name: name, Image: "example.invalid/" + name + ":1", Args: []string{"--serve"},
			Env:            []corev1.EnvVar{{Name: "PGDATA", Value: "/data"}},
			VolumeMounts:   []corev1.VolumeMount{{Name: "tls", MountPath: "/tls"}},
			Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			ReadinessProbe: probe, LivenessProbe: probe}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ours-0",
		Labels:      map[string]string{names.ManagedByLabel: names.ManagedBy, workload.RoleLabel: "primary"},
		Annotations: map[string]string{"datafleet.dev/agent-version": "1"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1", Args: []string{"install"},
				VolumeMounts: []corev1.VolumeMount{{Name: "run", MountPath: "/run/agent"}}}},
			Containers: []corev1.Container{container("postgres"), container("exporter")},
			Volumes: []corev1.Volume{
				{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "ours-agent-tls", DefaultMode: ptr.To[int32](0o400)}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			NodeSelector: map[string]string{"disk": "ssd"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}}},
		}}
}

// checkTrimmed: the cached pod has the metadata, the order of containers with their names and
// images, the Secret volumes' names and Secrets, and nothing else of the spec (trimPods' list).
func checkTrimmed(t *testing.T, sent, cached *corev1.Pod) {
	t.Helper()
	if len(cached.ManagedFields) != 0 || cached.Labels[workload.RoleLabel] != "primary" || cached.Annotations["datafleet.dev/agent-version"] != "1" || cached.UID == "" {
		t.Errorf("the cached pod's metadata: %+v", cached.ObjectMeta)
	}
	want := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1"}},
		Containers:     []corev1.Container{{Name: "postgres", Image: "example.invalid/postgres:1"}, {Name: "exporter", Image: "example.invalid/exporter:1"}},
		Volumes: []corev1.Volume{
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: sent.Spec.Volumes[0].Secret.SecretName}}}},
	}
	if !equality.Semantic.DeepEqual(cached.Spec, want) {
		t.Errorf("the cached pod's spec is\n%+v\nwant only\n%+v", cached.Spec, want)
	}
}
