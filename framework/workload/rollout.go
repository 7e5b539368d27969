package workload

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Rollout is where an OnDelete StatefulSet stands in replacing its pods with the current
// revision. The engine decides the order (a primary last, a quorum kept) and deletes pods itself.
type Rollout struct {
	// Outdated pods run an older revision, highest ordinal first.
	Outdated []*corev1.Pod
	// AllReady is true when every pod the StatefulSet wants exists and is ready: the only time
	// it is safe to take the next one down.
	AllReady bool
}

// RolloutOf reports the rollout of sts over its pods.
func RolloutOf(sts *appsv1.StatefulSet, pods []corev1.Pod) Rollout {
	want := int32(1)
	if sts.Spec.Replicas != nil {
		want = *sts.Spec.Replicas
	}
	r := Rollout{AllReady: int32(len(pods)) >= want}
	for i := range pods {
		p := &pods[i]
		if !PodReady(p) || !p.DeletionTimestamp.IsZero() {
			r.AllReady = false
		}
		if rev := p.Labels[appsv1.ControllerRevisionHashLabelKey]; sts.Status.UpdateRevision != "" && rev != sts.Status.UpdateRevision {
			r.Outdated = append(r.Outdated, p)
		}
	}
	sort.Slice(r.Outdated, func(i, j int) bool { return Ordinal(r.Outdated[i].Name) > Ordinal(r.Outdated[j].Name) })
	return r
}

// Ordinal is the number a StatefulSet puts at the end of its pods' names (-1 if none).
func Ordinal(pod string) int {
	i := strings.LastIndexByte(pod, '-')
	n, err := strconv.Atoi(pod[i+1:])
	if i < 0 || err != nil {
		return -1
	}
	return n
}

// PodReady is the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReadyPod is the first ready pod with an IP, by name, among the namespace's pods with the
// labels: the one an operator asks when any member (or the only primary) will do. Nil if none.
func ReadyPod(ctx context.Context, c client.Reader, namespace string, labels map[string]string) (*corev1.Pod, error) {
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels(labels)); err != nil {
		return nil, err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for i := range pods.Items {
		if p := &pods.Items[i]; PodReady(p) && p.Status.PodIP != "" {
			return p, nil
		}
	}
	return nil, nil
}

// Replace deletes an outdated pod so that its StatefulSet re-creates it from the current
// revision. The UID precondition makes sure a pod re-created meanwhile is not taken down too.
func Replace(ctx context.Context, c client.Client, pod *corev1.Pod) error {
	if err := c.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("replacing pod %s: %w", pod.Name, err)
	}
	log.FromContext(ctx).Info("replaced an outdated pod", "pod", pod.Name)
	return nil
}
