package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
)

// setReady sets the Ready condition on a status's conditions.
func setReady(conds *[]metav1.Condition, gen int64, ok bool, reason, message string) {
	setCondition(conds, v1alpha1.ConditionReady, gen, ok, reason, message)
}

// setCondition sets a condition of type kind on a status's conditions.
func setCondition(conds *[]metav1.Condition, kind string, gen int64, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: kind, Status: status, Reason: reason,
		Message: truncate(message, 2048), ObservedGeneration: gen})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// writeStatus patches obj's status from before, once, and only if it changed. own learns the
// versions this reconcile's writes replaced: read, the one it read, and before's (after its
// finalizer, if it added one).
func writeStatus(ctx context.Context, c client.Client, own *apply.OwnWrites, read string, before, obj client.Object, changed bool) error {
	key := client.ObjectKeyFromObject(obj)
	if !changed {
		if before.GetResourceVersion() != read {
			own.Wrote(key, read, read)
		}
		return nil
	}
	if err := apply.PatchStatus(ctx, c, before, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	own.Wrote(key, read, before.GetResourceVersion())
	return nil
}

func statusChanged(a, b any) bool { return !equality.Semantic.DeepEqual(a, b) }

// instanceReady reports whether the instance's Ready condition is True for its current spec.
func instanceReady(inst *v1alpha1.ServiceInstance) bool {
	c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && inst.Status.Version != ""
}

func findReady(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
}

func conditionMessage(conds []metav1.Condition) string {
	if c := findReady(conds); c != nil {
		return c.Reason + ": " + c.Message
	}
	return ""
}
