package apply

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PatchStatus writes obj's status as a patch from before that fails if the object changed since
// before was read (the next reconcile computes it again from what is there then).
func PatchStatus(ctx context.Context, c client.Client, before, obj client.Object) error {
	return c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
