// Package fakeengine is an engine used only by tests. It renders a ConfigMap, a Service and a
// StatefulSet like a real engine would, but runs nothing: it proves the framework needs no real
// engine. In tests without a StatefulSet controller, the test plays that controller's part by
// writing the StatefulSet's status (MarkReady). It is the framework's test double, not an example:
// a new engine copies engines/reference, the documented reference engine with an agent.
package fakeengine

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/params"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// Name is the engine name the fake engine serves.
const Name = "fake"

// Parameters the fake engine accepts, with their types. "extra" renders an extra ConfigMap, so
// tests can watch it being pruned when the parameter goes away.
var allowed = params.Spec{
	Allowed: map[string]params.Kind{"max_connections": params.Int(1, 10000), "mode": params.Enum("a", "b"), "extra": params.Bool()},
	Owned:   map[string]string{"port": "clients and probes depend on it"},
}

// Engine is the fake engine.
type Engine struct{}

var _ engine.Engine = Engine{}

// New returns the fake engine.
func New() Engine { return Engine{} }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

// ChildTypes implements engine.Engine.
func (Engine) ChildTypes() []client.Object {
	return []client.Object{&corev1.ConfigMap{}, &corev1.Service{}, &appsv1.StatefulSet{}}
}

// Ports implements engine.Engine.
func (Engine) Ports() engine.Ports { return engine.Ports{Clients: []string{"fake"}} }

// Validate implements engine.Engine with a typed allow-list, as real engines do.
func (Engine) Validate(inst *v1alpha1.ServiceInstance, _ catalog.Release) field.ErrorList {
	return allowed.Validate(inst.Spec.Parameters, field.NewPath("spec", "parameters"))
}

// Render implements engine.Engine.
func (Engine) Render(in engine.RenderInput) ([]client.Object, error) {
	inst := in.Instance
	sel := names.InstanceLabels(Name, inst.Name)
	replicas := inst.DesiredReplicas()
	cfg := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "config", names.MaxDNSLabel)},
		Data:       map[string]string{"fake.conf": params.Lines(inst.Spec.Parameters)},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: workload.ServiceName(inst)},
		Spec: corev1.ServiceSpec{
			Selector: sel,
			Ports:    []corev1.ServicePort{{Name: "fake", Port: 5555, TargetPort: intstr.FromString("fake"), Protocol: corev1.ProtocolTCP}},
		},
	}
	podLabels := names.InstanceLabels(Name, inst.Name)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "", names.MaxStatefulSet)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: svc.Name,
			Selector:    &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:         "fake",
						Image:        in.Release.Image,
						Args:         []string{"--config=/etc/fake/fake.conf"},
						Ports:        []corev1.ContainerPort{{Name: "fake", ContainerPort: 5555, Protocol: corev1.ProtocolTCP}},
						Resources:    inst.Spec.Resources,
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/fake"}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cfg.Name}},
					}}},
				},
			},
		},
	}
	if workload.Recovers(inst) {
		// Restored from a physical backup: its pods mount the recovery, as PostgreSQL's do, so
		// that the framework's restores of one can be tested with this engine.
		m, v := workload.RecoveryVolume(inst)
		pod := &sts.Spec.Template.Spec
		pod.Containers[0].VolumeMounts, pod.Volumes = append(pod.Containers[0].VolumeMounts, m), append(pod.Volumes, v)
	}
	if st := inst.Spec.Storage; st != nil {
		sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: names.InstanceLabels(Name, inst.Name)},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: st.StorageClassName,
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: st.Size}},
			},
		}}
	}
	objs := []client.Object{cfg, svc, sts}
	if inst.Spec.Parameters["extra"] == "true" {
		objs = append(objs, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "extra", names.MaxDNSLabel)},
			Data:       map[string]string{"extra": "true"},
		})
	}
	return objs, nil
}
