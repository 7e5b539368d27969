package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Key identifies a child by kind and name.
type Key struct {
	GVK  schema.GroupVersionKind
	Name string
}

// KeyOf returns the Key of an unstructured object.
func KeyOf(u *unstructured.Unstructured) Key {
	return Key{GVK: u.GroupVersionKind(), Name: u.GetName()}
}

// List lists the objects of kind gvk in namespace that match the selector, through the typed
// list so that the manager's cache serves it. When owner is set, only objects controlled by owner
// are returned: objects that merely carry the labels but belong to something else are never pruned.
func List(ctx context.Context, r client.Reader, scheme *runtime.Scheme, gvk schema.GroupVersionKind,
	namespace string, selector client.MatchingLabels, owner types.UID) ([]client.Object, error) {
	o, err := scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return nil, fmt.Errorf("kind %sList is not in the manager's scheme: %w", gvk.Kind, err)
	}
	list, ok := o.(client.ObjectList)
	if !ok {
		return nil, fmt.Errorf("%sList is not a list", gvk.Kind)
	}
	if err := r.List(ctx, list, client.InNamespace(namespace), selector); err != nil {
		return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, item := range items {
		obj, ok := item.(client.Object)
		if !ok {
			continue
		}
		if owner != "" {
			if ref := metav1.GetControllerOfNoCopy(obj); ref == nil || ref.UID != owner {
				continue
			}
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		out = append(out, obj)
	}
	return out, nil
}

// Delete removes obj, letting the garbage collector remove what it owns in the background.
// An object already gone counts as deleted.
func Delete(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: ptrUID(obj.GetUID())})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
	}
	return nil
}

func ptrUID(u types.UID) *types.UID {
	if u == "" {
		return nil
	}
	return &u
}
