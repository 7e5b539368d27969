package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// The day-2 actions change one field of the spec, as a user's `kubectl patch` would: the
// operator does the work, and the validating webhook refuses what it would refuse from kubectl.
// Each returns the line to print.

// Pause sets the instance's spec.paused (or clears it, to resume).
func Pause(ctx context.Context, c client.Client, ns, name string, paused bool) (string, error) {
	inst := &v1alpha1.ServiceInstance{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inst); err != nil {
		return "", err
	}
	// null removes the field: a resumed instance's spec reads as one never paused.
	value := any(nil)
	if paused {
		value = true
	}
	if err := mergePatch(ctx, c, inst, map[string]any{"spec": map[string]any{"paused": value}}); err != nil {
		return "", err
	}
	if paused {
		return fmt.Sprintf("serviceinstance %s/%s paused: the operator changes nothing of it until `kubectl datafleet resume %s -n %s`", ns, name, name, ns), nil
	}
	return fmt.Sprintf("serviceinstance %s/%s resumed: the operator applies what its spec asks", ns, name), nil
}

// Switchover asks the operator to move the instance's primary to pod (spec.primary); with no pod
// named, to the lowest-numbered ready pod that is not the primary now.
func Switchover(ctx context.Context, c client.Client, ns, name, pod string) (string, error) {
	inst := &v1alpha1.ServiceInstance{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inst); err != nil {
		return "", err
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
		return "", err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return workload.Ordinal(a.Name) - workload.Ordinal(b.Name) })
	if pod == "" {
		for _, p := range pods.Items {
			if p.Name != inst.Status.CurrentPrimary && workload.PodReady(&p) {
				pod = p.Name
				break
			}
		}
		if pod == "" {
			return "", fmt.Errorf("serviceinstance %s/%s has no ready pod besides its primary %q to switch over to", ns, name, inst.Status.CurrentPrimary)
		}
	} else if !slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Name == pod }) {
		return "", fmt.Errorf("pod %s is not a pod of serviceinstance %s/%s", pod, ns, name)
	}
	if pod == inst.Status.CurrentPrimary && inst.Spec.Primary == pod {
		return fmt.Sprintf("serviceinstance %s/%s: %s is already the primary", ns, name, pod), nil
	}
	if err := mergePatch(ctx, c, inst, map[string]any{"spec": map[string]any{"primary": pod}}); err != nil {
		return "", err
	}
	return fmt.Sprintf("serviceinstance %s/%s: switchover to %s requested (the primary is %s; `kubectl datafleet status %s -n %s` shows when it has moved)",
		ns, name, pod, orNone(inst.Status.CurrentPrimary), name, ns), nil
}

// Rotate raises the binding's spec.rotation.generation by one, keeping its overlap: a new user
// and password, the previous one valid for the overlap. The update carries the binding's
// resourceVersion, so two rotations at once cannot both raise it from the same generation.
func Rotate(ctx context.Context, c client.Client, ns, name string) (string, error) {
	b := &v1alpha1.ServiceBinding{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b); err != nil {
		return "", err
	}
	before := b.DeepCopy()
	if b.Spec.Rotation == nil {
		b.Spec.Rotation = &v1alpha1.CredentialRotation{}
	}
	b.Spec.Rotation.Generation++
	if err := c.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return "", err
	}
	overlap := "1h (the default)"
	if o := b.Spec.Rotation.Overlap; o != nil {
		overlap = o.Duration.String()
	}
	return fmt.Sprintf("servicebinding %s/%s: rotation to generation %d requested; its Secret gets the new credentials, the previous ones work for %s more",
		ns, name, b.Spec.Rotation.Generation, overlap), nil
}

func mergePatch(ctx context.Context, c client.Client, o client.Object, patch map[string]any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return c.Patch(ctx, o, client.RawPatch(types.MergePatchType, data))
}

func orNone(s string) string {
	if s == "" {
		return "none yet"
	}
	return s
}
