// Package apply puts rendered children on the API server with server-side apply and removes the
// ones no longer rendered. A child whose live state already holds every field we would apply is
// left alone, so a settled instance costs no API writes.
package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Applier applies children as one field owner.
type Applier struct {
	Client     client.Client
	Scheme     *runtime.Scheme
	FieldOwner string
}

// Result tells what Apply did.
type Result struct {
	// Applied is true when a write was sent (the object was missing or had drifted).
	Applied bool
}

// Apply makes the live object hold every field of desired. It reads the live object from the
// cache first and sends a server-side apply only when something differs, so it never does
// read-modify-write and never fights other field owners over fields it does not set.
func (a *Applier) Apply(ctx context.Context, desired client.Object) (Result, error) {
	u, err := ToUnstructured(a.Scheme, desired)
	if err != nil {
		return Result{}, err
	}
	// Read the typed object so the read is served by the manager's cache, not the API server.
	live, err := a.newObject(u.GroupVersionKind())
	if err != nil {
		return Result{}, err
	}
	if err := a.Client.Get(ctx, client.ObjectKeyFromObject(u), live); err == nil {
		liveMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
		if err != nil {
			return Result{}, err
		}
		if Contains(liveMap, u.Object) {
			return Result{}, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return Result{}, fmt.Errorf("reading %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(a.FieldOwner), client.ForceOwnership); err != nil {
		return Result{}, fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return Result{Applied: true}, nil
}

func (a *Applier) newObject(gvk schema.GroupVersionKind) (client.Object, error) {
	o, err := a.Scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("kind %s is not in the manager's scheme: %w", gvk, err)
	}
	obj, ok := o.(client.Object)
	if !ok {
		return nil, fmt.Errorf("kind %s is not a client.Object", gvk)
	}
	return obj, nil
}

// ToUnstructured converts a typed object to the unstructured form sent with server-side apply:
// apiVersion and kind set, and no status or server-populated metadata.
func ToUnstructured(scheme *runtime.Scheme, obj client.Object) (*unstructured.Unstructured, error) {
	gvk, err := GVKFor(scheme, obj)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return u, nil
}

// GVKFor returns the object's GroupVersionKind, from its TypeMeta or else from the scheme.
func GVKFor(scheme *runtime.Scheme, obj runtime.Object) (schema.GroupVersionKind, error) {
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		return gvk, nil
	}
	return apiutil.GVKForObject(obj, scheme)
}
