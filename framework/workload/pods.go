// Package workload builds the parts of an engine's pods that every engine needs in the same way:
// restricted security, spreading across nodes and zones, a disruption budget, and the order in
// which an OnDelete StatefulSet's pods are replaced.
package workload

import (
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// RestrictedPod is the pod security context of the "restricted" Pod Security Standard, running as
// uid (and group) of the engine's user.
func RestrictedPod(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(uid), RunAsGroup: ptr.To(uid),
		FSGroup: ptr.To(uid), FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// RestrictedContainer is the container security context of the "restricted" standard, with a
// read-only root filesystem: engines write only to their volumes.
func RestrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// Spread keeps an instance's pods apart: preferably on different nodes (required would leave a
// single-node cluster unable to run more than one replica) and evenly across zones.
func Spread(selector map[string]string) (*corev1.Affinity, []corev1.TopologySpreadConstraint) {
	sel := &metav1.LabelSelector{MatchLabels: selector}
	affinity := &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight:          100,
			PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: sel, TopologyKey: corev1.LabelHostname},
		}},
	}}
	spread := []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: sel,
	}}
	return affinity, spread
}

// DisruptionBudget lets voluntary disruptions (node drains) take one pod of the instance at a
// time. A single-pod instance gets none: a budget allowing no disruption would block every drain.
func DisruptionBudget(name string, replicas int32, selector map[string]string) *policyv1.PodDisruptionBudget {
	if replicas < 2 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: selector},
		},
	}
}
