package webhook

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// NamespaceValidator refuses to delete a namespace that holds a ServiceInstance with deletion
// protection: the namespace controller would delete the instance's PVCs (and with most storage
// classes its volumes) while the instance itself waits, protected, for nobody. The chart sends it
// only namespace deletions; for namespaces the operator labelled (names.ProtectedLabel) it fails
// closed, for the others open.
type NamespaceValidator struct {
	Client client.Reader
}

var _ admission.Validator[*corev1.Namespace] = &NamespaceValidator{}

// ValidateDelete refuses while a protected instance lives in the namespace.
func (v *NamespaceValidator) ValidateDelete(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	list := &v1alpha1.ServiceInstanceList{}
	if err := v.Client.List(ctx, list, client.InNamespace(ns.Name)); err != nil {
		return nil, err
	}
	var protected []string
	for _, inst := range list.Items {
		if inst.Spec.DeletionProtection {
			protected = append(protected, inst.Name)
		}
	}
	if len(protected) == 0 {
		return nil, nil
	}
	return nil, apierrors.NewForbidden(corev1.Resource("namespaces"), ns.Name, fmt.Errorf(
		"it holds ServiceInstances with deletion protection (%s), whose volumes would go with the namespace; "+
			"turn protection off on each first: kubectl patch serviceinstance NAME -n %s --type merge -p '{\"spec\":{\"deletionProtection\":false}}'",
		strings.Join(protected, ", "), ns.Name))
}

// ValidateCreate admits: the chart sends only deletions.
func (v *NamespaceValidator) ValidateCreate(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate admits: the chart sends only deletions.
func (v *NamespaceValidator) ValidateUpdate(context.Context, *corev1.Namespace, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}
