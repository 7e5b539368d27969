package workload

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
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

// ReadyMember is the instance's first ready pod labelled role: the one the operator asks for what
// only that member can do (a user created on the primary). An error names the role when no pod
// of it is ready.
func ReadyMember(ctx context.Context, c client.Reader, engineName string, inst *v1alpha1.ServiceInstance, role string) (*corev1.Pod, error) {
	sel := names.InstanceLabels(engineName, inst.Name)
	sel[RoleLabel] = role
	p, err := ReadyPod(ctx, c, inst.Namespace, sel)
	if err == nil && p == nil {
		err = fmt.Errorf("no ready %s", role)
	}
	return p, err
}
