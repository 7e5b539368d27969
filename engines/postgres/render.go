package postgres

import (
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/params"
)

const (
	port      = 5432
	agentPort = 8000
	// uid of the postgres user in our Debian images and in the official upstream images.
	postgresUID = 999

	dataMount   = "/var/lib/postgresql/data"
	configMount = "/etc/datafleet"
	agentMount  = "/datafleet/bin"
	socketDir   = "/var/run/postgresql"
	paramsFile  = "parameters.conf"

	defaultStorage = "1Gi"
)

// Render implements engine.Engine: a ConfigMap with the parameters, a read-write Service, a
// headless Service for the pods' stable names, and the StatefulSet.
func (Engine) Render(in engine.RenderInput) ([]client.Object, error) {
	if in.AgentImage == "" {
		return nil, errors.New("the operator was started without an agent image (--agent-image), which postgres pods need")
	}
	inst := in.Instance
	cfg := configMap(inst)
	headless := headlessService(inst)
	return []client.Object{cfg, service(inst), headless, statefulSet(in, cfg.Name, headless.Name)}, nil
}

func configMap(inst *v1alpha1.ServiceInstance) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "config", names.MaxDNSLabel)},
		Data:       map[string]string{paramsFile: params.Lines(inst.Spec.Parameters)},
	}
}

// service is what clients connect to: <instance>.<namespace>.svc, read-write.
func service(inst *v1alpha1.ServiceInstance) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "", names.MaxDNSLabel)},
		Spec: corev1.ServiceSpec{
			Selector: names.InstanceLabels(Name, inst.Name),
			Ports:    []corev1.ServicePort{{Name: "postgres", Port: port, TargetPort: intstr.FromString("postgres"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// headlessService gives each pod a stable DNS name, which replication will use.
func headlessService(inst *v1alpha1.ServiceInstance) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "pods", names.MaxDNSLabel)},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 names.InstanceLabels(Name, inst.Name),
			Ports:                    []corev1.ServicePort{{Name: "postgres", Port: port, TargetPort: intstr.FromString("postgres"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func statefulSet(in engine.RenderInput, configName, serviceName string) *appsv1.StatefulSet {
	inst := in.Instance
	labels := names.InstanceLabels(Name, inst.Name)
	replicas := inst.DesiredReplicas()
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: names.Child(inst.Name, "", names.MaxStatefulSet)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: serviceName,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			// Volumes outlive the StatefulSet; the instance's deletionPolicy decides about them.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec(in, configName),
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{dataClaim(inst)},
		},
	}
}

func dataClaim(inst *v1alpha1.ServiceInstance) corev1.PersistentVolumeClaim {
	size := resource.MustParse(defaultStorage)
	var class *string
	if s := inst.Spec.Storage; s != nil {
		size, class = s.Size, s.StorageClassName
	}
	return corev1.PersistentVolumeClaim{
		// Labelled so that deletionPolicy Delete finds the claims by instance.
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: names.InstanceLabels(Name, inst.Name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

func podSpec(in engine.RenderInput, configName string) corev1.PodSpec {
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	emptyDir := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](postgresUID), RunAsGroup: ptr.To[int64](postgresUID),
			FSGroup: ptr.To[int64](postgresUID), FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		// A fast shutdown (the agent's stop signal) finishes well within this.
		TerminationGracePeriodSeconds: ptr.To[int64](60),
		InitContainers: []corev1.Container{{
			Name:            "agent",
			Image:           in.AgentImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"/manager", "install-agent", agentMount + "/manager"},
			SecurityContext: restricted,
			VolumeMounts:    []corev1.VolumeMount{{Name: "agent", MountPath: agentMount}},
		}},
		Containers: []corev1.Container{{
			Name:    "postgres",
			Image:   in.Release.Image,
			Command: []string{agentMount + "/manager", "agent", Name},
			Args: []string{
				"--data-dir=" + dataMount + "/pgdata",
				"--socket-dir=" + socketDir,
				"--parameters-file=" + configMount + "/" + paramsFile,
			},
			Ports: []corev1.ContainerPort{
				{Name: "postgres", ContainerPort: port, Protocol: corev1.ProtocolTCP},
				{Name: "agent", ContainerPort: agentPort, Protocol: corev1.ProtocolTCP},
			},
			// initdb and crash recovery may take a while: the startup probe holds the others off.
			StartupProbe:    httpProbe(fwagent.PathHealth, 120),
			LivenessProbe:   httpProbe(fwagent.PathHealth, 6),
			ReadinessProbe:  httpProbe(fwagent.PathReady, 3),
			Resources:       in.Instance.Spec.Resources,
			SecurityContext: restricted,
			VolumeMounts: []corev1.VolumeMount{
				{Name: "data", MountPath: dataMount},
				{Name: "config", MountPath: configMount, ReadOnly: true},
				{Name: "agent", MountPath: agentMount, ReadOnly: true},
				{Name: "run", MountPath: socketDir},
				{Name: "tmp", MountPath: "/tmp"},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: configName}}}},
			emptyDir("agent"), emptyDir("run"), emptyDir("tmp"),
		},
	}
}

func httpProbe(path string, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("agent")}},
		PeriodSeconds:    5,
		TimeoutSeconds:   4,
		FailureThreshold: failures,
	}
}
