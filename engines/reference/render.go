package reference

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	refagent "github.com/datafleet-dev/datafleet/engines/reference/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

const (
	// uid of the redis user in Debian's and the official images.
	redisUID = 999

	dataMount   = "/data"
	configMount = "/etc/datafleet"
	secretMount = "/etc/datafleet/secret"
	runMount    = "/var/run/redis"

	defaultStorage = "1Gi"

	// ConfigAnnotation carries a digest of the parameters on the pod template: a change makes a
	// new revision, which the supervisor rolls out (Redis reads redis.conf only at start).
	ConfigAnnotation = "datafleet.dev/configuration"
)

// SecretName holds the generated password (supervise.go creates it, the pod mounts it).
func SecretName(inst *v1alpha1.ServiceInstance) string {
	return names.Child(inst.Name, "redis", names.MaxDNSLabel)
}

// Render implements engine.Engine: the ConfigMap of the tenant's settings, the client Service, the
// headless Service that names the pod, and the StatefulSet. The framework sets namespace, labels
// and the owner reference on each; Render needs no client and makes no call.
func (Engine) Render(in engine.RenderInput) ([]client.Object, error) {
	if err := in.CheckAgentImage(Name); err != nil {
		return nil, err
	}
	inst := in.Instance
	cfg := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "config", names.MaxDNSLabel)},
		Data:       map[string]string{refagent.ConfigFile: config(inst.Spec.Parameters)},
	}
	port := workload.ServicePort("redis", refagent.Port)
	clients := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: workload.ServiceName(inst)},
		Spec:       corev1.ServiceSpec{Selector: names.InstanceLabels(Name, inst.Name), Ports: []corev1.ServicePort{port}},
	}
	headless := workload.HeadlessService(Name, inst, port)
	sts := workload.StatefulSet(Name, inst, headless.Name, podAnnotations(inst), podSpec(in, cfg.Name),
		workload.DataClaim(Name, inst, defaultStorage))
	return []client.Object{cfg, clients, headless, sts}, nil
}

// config is the tenant's part of redis.conf, sorted so that the same parameters render the same
// file. The agent adds the operator's part after it.
func config(p map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&b, "%s %s\n", k, p[k])
	}
	return b.String()
}

func podAnnotations(inst *v1alpha1.ServiceInstance) map[string]string {
	if d := parameters.RestartDigest(inst.Spec.Parameters); d != "" {
		return map[string]string{ConfigAnnotation: d}
	}
	return nil
}

// podSpec is the pod: the agent as PID 1 (workload.AgentPod adds its init container, probes,
// security context and spreading), with its arguments as one typed struct.
func podSpec(in engine.RenderInput, configName string) corev1.PodSpec {
	inst := in.Instance
	args := refagent.Args{ConfigDir: configMount, SecretDir: secretMount, DataDir: dataMount, RunDir: runMount,
		Port: refagent.Port, Bind: "* -::*"}
	return workload.AgentPod{
		Engine: Name, Instance: inst, Image: in.Release.Image, AgentImage: in.AgentImage, UID: redisUID,
		Args:  fwagent.Flags(args),
		Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: refagent.Port, Protocol: corev1.ProtocolTCP}},
		Mounts: []corev1.VolumeMount{
			{Name: "data", MountPath: dataMount},
			{Name: "config", MountPath: configMount, ReadOnly: true},
			{Name: "secret", MountPath: secretMount, ReadOnly: true},
			{Name: "run", MountPath: runMount},
		},
		Volumes: []corev1.Volume{
			workload.ConfigMapVolume("config", configName),
			workload.SecretVolume("secret", SecretName(inst)),
			workload.EmptyDir("run"),
		},
		GracePeriod: 30,
	}.Spec()
}
