package workload

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent"
)

// UnreadyMember names the first member of an instance whose agent does not report its engine
// ready, and why; "" when every member's does. statuses[i] is what pods[i]'s agent answered (nil
// when it did not); a pod whose ordinal is not below replicas is left over from a scale-down and
// is no member. Supervisors hold Ready back on it because the StatefulSet's readyReplicas lags
// behind the pods: a member whose container has just exited (a primary that stepped down
// restarts as a replica) still counts as ready there for a moment.
func UnreadyMember(pods []corev1.Pod, statuses []*agent.Status, replicas int32) string {
	for i := range pods {
		if Ordinal(pods[i].Name) >= int(replicas) {
			continue
		}
		switch st := statuses[i]; {
		case st == nil:
			return pods[i].Name + "'s agent does not answer"
		case !st.Ready:
			return fmt.Sprintf("%s's agent reports its engine not ready: %s", pods[i].Name, st.Detail)
		}
	}
	return ""
}

// MissingMember names the first pod the instance wants that is not among pods ("" when none is
// missing). The StatefulSet's readyReplicas and the pods come from two caches: an instance is
// not ready while a member's pod has not reached the operator's.
func MissingMember(inst *v1alpha1.ServiceInstance, pods []corev1.Pod) string {
	present := make([]bool, inst.DesiredReplicas())
	for i := range pods {
		if o := Ordinal(pods[i].Name); o >= 0 && o < len(present) {
			present[o] = true
		}
	}
	for o, ok := range present {
		if !ok {
			return PodName(inst, o)
		}
	}
	return ""
}
