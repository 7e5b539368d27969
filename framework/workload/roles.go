package workload

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RoleLabel is the label an engine's supervisor puts on each pod from the role its agent reports
// ("primary", "replica"): Services select a role, so clients follow the primary.
const RoleLabel = "datafleet.dev/role"

// SetRole puts role on the pod's RoleLabel ("" removes it); it writes nothing when the pod has it.
func SetRole(ctx context.Context, c client.Client, pod *corev1.Pod, role string) error {
	if pod.Labels[RoleLabel] == role {
		return nil
	}
	patched := pod.DeepCopy()
	if role == "" {
		delete(patched.Labels, RoleLabel)
	} else {
		if patched.Labels == nil {
			patched.Labels = map[string]string{}
		}
		patched.Labels[RoleLabel] = role
	}
	if err := c.Patch(ctx, patched, client.MergeFrom(pod)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("labelling pod %s: %w", pod.Name, err)
	}
	return nil
}
