package workload

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// AgentMount is where the instance agent's binary lives in an engine's pod; AgentTLSMount holds
// the agents' certificate (certs.AgentSecretName), with which the agent API is mutual TLS.
const (
	AgentMount    = "/datafleet/bin"
	AgentTLSMount = "/datafleet/agent-tls"
)

// AgentPortName names the agent's container port: the probes and the instance's NetworkPolicy
// (framework/netpol) refer to it by this name.
const AgentPortName = "agent"

// AgentPod describes an engine pod whose PID 1 is the instance agent ("manager agent <engine>"),
// copied from the operator image by an init container so that the engine's image (ours or the
// official one) needs no entrypoint of its own.
type AgentPod struct {
	Engine     string
	Instance   *v1alpha1.ServiceInstance
	Image      string // the engine's image
	AgentImage string // the operator's image
	// UID the engine's user has in its image (and in the official one).
	UID int64
	// ServiceAccount is the pod's own account, when its agent needs the API server; empty: the
	// namespace's default, with no token mounted.
	ServiceAccount string
	Args           []string
	Ports          []corev1.ContainerPort
	Mounts         []corev1.VolumeMount
	Volumes        []corev1.Volume
	// GracePeriod is how long the engine may take to stop cleanly.
	GracePeriod int64
}

// Spec is the pod: restricted security, placed as the instance asks (Schedule), the agent's init
// container, and the engine's container with the agent's probes, POD_NAME and POD_NAMESPACE.
func (a AgentPod) Spec() corev1.PodSpec {
	restricted := RestrictedContainer()
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	pod := corev1.PodSpec{
		ServiceAccountName: a.ServiceAccount,
		// Only an engine that gives its pods an account of their own talks to the API server;
		// the namespace's default account's token is of no use to the others, and of use to an
		// attacker inside the pod.
		AutomountServiceAccountToken:  ptr.To(a.ServiceAccount != ""),
		SecurityContext:               RestrictedPod(a.UID),
		TerminationGracePeriodSeconds: ptr.To(a.GracePeriod),
		InitContainers: []corev1.Container{{
			Name:            AgentInitContainer,
			Image:           a.AgentImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"/manager", "install-agent", AgentMount + "/manager"},
			// The engine's own: an init container without resources would keep the pod out of
			// the Guaranteed QoS class, and it runs before the engine, so it costs nothing more.
			Resources:       a.Instance.Spec.Resources,
			SecurityContext: restricted,
			VolumeMounts:    []corev1.VolumeMount{{Name: "agent", MountPath: AgentMount}},
		}},
		Containers: []corev1.Container{{
			Name:    a.Engine,
			Image:   a.Image,
			Command: []string{AgentMount + "/manager", "agent", a.Engine},
			Args:    append([]string{"--" + fwagent.FlagTLSDir + "=" + AgentTLSMount}, a.Args...),
			Env:     []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace")},
			Ports:   append(a.Ports, corev1.ContainerPort{Name: AgentPortName, ContainerPort: fwagent.Port, Protocol: corev1.ProtocolTCP}),
			// Initialisation and crash recovery may take a while: the startup probe holds the others off.
			StartupProbe:    agentProbe(fwagent.PathHealth, 120),
			LivenessProbe:   agentProbe(fwagent.PathHealth, 6),
			ReadinessProbe:  agentProbe(fwagent.PathReady, 3),
			Resources:       a.Instance.Spec.Resources,
			SecurityContext: restricted,
			VolumeMounts: append(a.Mounts, corev1.VolumeMount{Name: "agent", MountPath: AgentMount, ReadOnly: true},
				corev1.VolumeMount{Name: fwagent.TLSVolume, MountPath: AgentTLSMount, ReadOnly: true}),
		}},
		Volumes: append(a.Volumes, EmptyDir("agent"), SecretVolume(fwagent.TLSVolume, certs.AgentSecretName(a.Instance.Name))),
	}
	Schedule(&pod, a.Instance.Spec.Scheduling, names.InstanceLabels(a.Engine, a.Instance.Name))
	return pod
}

// AgentInitContainer names the init container that copies the agent from the operator's image.
const AgentInitContainer = "agent"

// AgentInit is the pod's AgentInitContainer, nil if it has none.
func AgentInit(spec *corev1.PodSpec) *corev1.Container {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == AgentInitContainer {
			return &spec.InitContainers[i]
		}
	}
	return nil
}

func agentProbe(path string, failures int32) *corev1.Probe {
	return &corev1.Probe{
		// The kubelet verifies no certificate and presents none: the probes' paths need none.
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(AgentPortName),
			Scheme: corev1.URISchemeHTTPS}},
		PeriodSeconds:    5,
		TimeoutSeconds:   4,
		FailureThreshold: failures,
	}
}

// EmptyDir is a pod-local scratch volume.
func EmptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// ConfigMapVolume mounts a ConfigMap's keys as files.
func ConfigMapVolume(name, configMap string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}}
}

// SecretVolume mounts a Secret's keys as files the pod's user and group may read, nobody else.
func SecretVolume(name, secret string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secret, DefaultMode: ptr.To[int32](0o440)}}}
}

// ServerTLSMount is where an agent pod mounts the instance's server certificate.
const ServerTLSMount = "/etc/datafleet/tls"

// ServerTLS gives an agent pod of an instance with spec.tls.enabled its server certificate
// (certs.ServerSecretName, which the framework issues before Render), at ServerTLSMount: the
// mount and the volume.
func ServerTLS(inst *v1alpha1.ServiceInstance) (corev1.VolumeMount, corev1.Volume) {
	return corev1.VolumeMount{Name: "tls", MountPath: ServerTLSMount, ReadOnly: true},
		SecretVolume("tls", certs.ServerSecretName(inst.Name))
}

// StatefulSet runs an instance's pods under stable names, replaced by the engine's supervisor
// (OnDelete) and started in parallel. Its claims outlive it: the instance's deletionPolicy
// decides about them.
func StatefulSet(engineName string, inst *v1alpha1.ServiceInstance, headless string, annotations map[string]string,
	pod corev1.PodSpec, claims ...corev1.PersistentVolumeClaim) *appsv1.StatefulSet {
	labels := names.InstanceLabels(engineName, inst.Name)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "", names.MaxStatefulSet)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(inst.DesiredReplicas()),
			ServiceName:         headless,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       pod,
			},
			VolumeClaimTemplates: claims,
		},
	}
}

// DataClaim is the claim template "data" of spec.storage, or of defaultSize when it is unset.
// It carries the instance's labels so that deletionPolicy Delete finds the claims.
func DataClaim(engineName string, inst *v1alpha1.ServiceInstance, defaultSize string) corev1.PersistentVolumeClaim {
	size := resource.MustParse(defaultSize)
	var class *string
	if s := inst.Spec.Storage; s != nil {
		size, class = s.Size, s.StorageClassName
	}
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: names.InstanceLabels(engineName, inst.Name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// HeadlessService gives each pod a stable DNS name (<pod>.<name>), published before the pod is
// ready so that members can find each other while they start.
func HeadlessService(engineName string, inst *v1alpha1.ServiceInstance, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: HeadlessName(inst)},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 names.InstanceLabels(engineName, inst.Name),
			Ports:                    ports,
		},
	}
}

// HeadlessName is the headless Service's name.
func HeadlessName(inst *v1alpha1.ServiceInstance) string {
	return names.Child(inst.Name, "pods", names.MaxDNSLabel)
}

// ServiceName is the name of the Service clients connect to: the instance's own.
func ServiceName(inst *v1alpha1.ServiceInstance) string {
	return names.Child(inst.Name, "", names.MaxDNSLabel)
}

// ServicePort is a TCP port named after the container port it targets.
func ServicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP}
}

// PodName is the name of the instance's pod with this ordinal (its StatefulSet's name and the
// ordinal).
func PodName(inst *v1alpha1.ServiceInstance, ordinal int) string {
	return fmt.Sprintf("%s-%d", names.Child(inst.Name, "", names.MaxStatefulSet), ordinal)
}

// MemberHost is the DNS name of the instance's pod with this ordinal, through its headless
// Service: how a Job in the namespace reaches one member.
func MemberHost(inst *v1alpha1.ServiceInstance, ordinal int) string {
	return fmt.Sprintf("%s.%s.%s.svc", PodName(inst, ordinal), HeadlessName(inst), inst.Namespace)
}

// SecretEnv is an environment variable read from a key of a Secret.
func SecretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
}
