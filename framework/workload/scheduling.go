package workload

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// Schedule places an instance's engine pods: the operator's spread (Spread) where the instance's
// scheduling sets nothing, its settings where it does. selector picks the instance's pods, for
// spread constraints that name none.
func Schedule(pod *corev1.PodSpec, s *v1alpha1.SchedulingSpec, selector map[string]string) {
	pod.Affinity, pod.TopologySpreadConstraints = Spread(selector)
	if s == nil {
		return
	}
	ScheduleJob(pod, s)
	if a := s.Affinity; a != nil {
		// The default is only an anti-affinity: node and pod affinity are added to it, an
		// anti-affinity of the instance's own replaces it.
		affinity := a.DeepCopy()
		if affinity.PodAntiAffinity == nil {
			affinity.PodAntiAffinity = pod.Affinity.PodAntiAffinity
		}
		pod.Affinity = affinity
	}
	if len(s.TopologySpreadConstraints) > 0 {
		spread := make([]corev1.TopologySpreadConstraint, len(s.TopologySpreadConstraints))
		for i, c := range s.TopologySpreadConstraints {
			c.DeepCopyInto(&spread[i])
			if spread[i].LabelSelector == nil {
				spread[i].LabelSelector = &metav1.LabelSelector{MatchLabels: selector}
			}
		}
		pod.TopologySpreadConstraints = spread
	}
}

// ScheduleJob gives a pod that works for an instance without being one of its members (a backup or
// restore Job's) the nodes and priority the instance's pods have: the node selector, tolerations
// and priority class. Affinity and spread are about the members' places, not a Job's.
func ScheduleJob(pod *corev1.PodSpec, s *v1alpha1.SchedulingSpec) {
	if s == nil {
		return
	}
	if len(s.NodeSelector) > 0 {
		pod.NodeSelector = make(map[string]string, len(s.NodeSelector))
		for k, v := range s.NodeSelector {
			pod.NodeSelector[k] = v
		}
	}
	for _, t := range s.Tolerations {
		pod.Tolerations = append(pod.Tolerations, *t.DeepCopy())
	}
	pod.PriorityClassName = s.PriorityClassName
}
