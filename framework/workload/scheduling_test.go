package workload_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

func agentPod(s *v1alpha1.SchedulingSpec, res corev1.ResourceRequirements) corev1.PodSpec {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Scheduling: s, Resources: res}}
	return workload.AgentPod{Engine: "postgres", Instance: inst, Image: "postgres:17", AgentImage: "operator:1", UID: 999}.Spec()
}

var selector = names.InstanceLabels("postgres", "orders")

// Without scheduling settings the pods get the operator's spread and nothing else: instances made
// before spec.scheduling existed render as they did.
func TestWithoutSchedulingThePodsKeepTheDefaultSpread(t *testing.T) {
	pod := agentPod(nil, corev1.ResourceRequirements{})
	affinity, spread := workload.Spread(selector)
	if pod.NodeSelector != nil || pod.Tolerations != nil || pod.PriorityClassName != "" {
		t.Errorf("placement nobody asked for: %v %v %q", pod.NodeSelector, pod.Tolerations, pod.PriorityClassName)
	}
	if !apiequality.Semantic.DeepEqual(pod.Affinity, affinity) || !apiequality.Semantic.DeepEqual(pod.TopologySpreadConstraints, spread) {
		t.Errorf("the default spread changed: %+v %+v", pod.Affinity, pod.TopologySpreadConstraints)
	}
}

// Every setting reaches the pod; a node affinity joins the default anti-affinity, an anti-affinity
// replaces it, and a spread constraint without a selector selects the instance's pods.
func TestSchedulingReachesThePods(t *testing.T) {
	nodeAffinity := &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "example.com/disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvme"}}}}}}}
	s := &v1alpha1.SchedulingSpec{
		NodeSelector:              map[string]string{"example.com/pool": "data"},
		Tolerations:               []corev1.Toleration{{Key: "example.com/data", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Affinity:                  &corev1.Affinity{NodeAffinity: nodeAffinity},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "example.com/rack", WhenUnsatisfiable: corev1.DoNotSchedule}},
		PriorityClassName:         "data",
	}
	pod := agentPod(s, corev1.ResourceRequirements{})
	defaultAffinity, _ := workload.Spread(selector)
	if pod.NodeSelector["example.com/pool"] != "data" || len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "example.com/data" || pod.PriorityClassName != "data" {
		t.Errorf("node selector %v, tolerations %v, priority class %q", pod.NodeSelector, pod.Tolerations, pod.PriorityClassName)
	}
	if !apiequality.Semantic.DeepEqual(pod.Affinity.NodeAffinity, nodeAffinity) ||
		!apiequality.Semantic.DeepEqual(pod.Affinity.PodAntiAffinity, defaultAffinity.PodAntiAffinity) {
		t.Errorf("affinity %+v: want the node affinity beside the default anti-affinity", pod.Affinity)
	}
	if c := pod.TopologySpreadConstraints; len(c) != 1 || c[0].TopologyKey != "example.com/rack" || c[0].LabelSelector == nil ||
		!apiequality.Semantic.DeepEqual(c[0].LabelSelector.MatchLabels, selector) {
		t.Errorf("spread %+v: want the rack constraint, selecting the instance's pods", c)
	}
	if s.TopologySpreadConstraints[0].LabelSelector != nil || s.Affinity.PodAntiAffinity != nil {
		t.Error("rendering wrote into the instance's spec")
	}

	required := &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchLabels: selector}, TopologyKey: corev1.LabelHostname}}}
	pod = agentPod(&v1alpha1.SchedulingSpec{Affinity: &corev1.Affinity{PodAntiAffinity: required}}, corev1.ResourceRequirements{})
	if !apiequality.Semantic.DeepEqual(pod.Affinity.PodAntiAffinity, required) {
		t.Errorf("anti-affinity %+v: want the instance's, not the default", pod.Affinity.PodAntiAffinity)
	}
}

// The agent's init container has the engine container's resources: with requests equal to limits
// every container has them, which the Guaranteed QoS class needs (TestTheAPIServerGivesGuaranteedPods
// has a real API server classify such a pod).
func TestTheInitContainerHasTheEnginesResources(t *testing.T) {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	pod := agentPod(nil, corev1.ResourceRequirements{Requests: res, Limits: res})
	init := workload.AgentInit(&pod)
	if !apiequality.Semantic.DeepEqual(init.Resources, pod.Containers[0].Resources) || len(pod.Containers) != 1 {
		t.Fatalf("init container %+v, engine %+v", init.Resources, pod.Containers[0].Resources)
	}
}
