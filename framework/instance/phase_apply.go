package instance

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/names"
)

type childKey struct {
	gvk  schema.GroupVersionKind
	name string
}

// applyChildren server-side applies every rendered child that is missing or has drifted.
func (r *Reconciler) applyChildren(ctx context.Context, s *scope) (bool, error) {
	a := r.applier()
	for _, o := range s.children {
		if _, err := a.Apply(ctx, o); err != nil {
			return false, err
		}
	}
	return false, nil
}

// pruneChildren deletes children this instance controls that the engine no longer renders.
func (r *Reconciler) pruneChildren(ctx context.Context, s *scope) (bool, error) {
	want := map[childKey]bool{}
	for _, o := range s.children {
		gvk, err := apply.GVKFor(r.Scheme, o)
		if err != nil {
			return false, err
		}
		want[childKey{gvk, o.GetName()}] = true
	}
	for _, t := range ChildTypes(r.Engine) {
		gvk, err := apply.GVKFor(r.Scheme, t)
		if err != nil {
			return false, err
		}
		live, err := apply.List(ctx, r.Client, r.Scheme, gvk, s.inst.Namespace, r.selector(s), s.inst.UID)
		if err != nil {
			return false, err
		}
		for _, o := range live {
			if !want[childKey{gvk, o.GetName()}] {
				if err := apply.Delete(ctx, r.Client, o); err != nil {
					return false, err
				}
			}
		}
	}
	s.applied = true
	return false, nil
}

func (r *Reconciler) selector(s *scope) client.MatchingLabels {
	return client.MatchingLabels(names.InstanceLabels(r.Engine.Name(), s.inst.Name))
}
