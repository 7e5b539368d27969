package workload

import (
	"context"
	"fmt"

	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// PriorityClassPath is where an instance names its pods' PriorityClass.
var PriorityClassPath = field.NewPath("spec", "scheduling", "priorityClassName")

// MissingPriorityClass says why the instance's pods could not be created when the PriorityClass
// it names does not exist (nil when it names none, or one that exists). The webhook asks it at
// admission, the reconciler again before rendering: the class may be deleted in between, and a
// StatefulSet's pods would then fail to be created with nothing on the instance to say why.
func MissingPriorityClass(ctx context.Context, c client.Reader, inst *v1alpha1.ServiceInstance) (*field.Error, error) {
	name := inst.PriorityClassName()
	if name == "" {
		return nil, nil
	}
	err := c.Get(ctx, client.ObjectKey{Name: name}, &schedulingv1.PriorityClass{})
	switch {
	case apierrors.IsNotFound(err):
		return field.NotFound(PriorityClassPath, fmt.Sprintf("PriorityClass %q (the platform team creates the classes data pods may use)", name)), nil
	case err != nil:
		return nil, fmt.Errorf("reading PriorityClass %s: %w", name, err)
	}
	return nil, nil
}
