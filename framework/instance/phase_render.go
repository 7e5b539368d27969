package instance

import (
	"context"
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/netpol"
)

// render asks the engine for the children and stamps what every child must carry.
func (r *Reconciler) render(_ context.Context, s *scope) (bool, error) {
	objs, err := r.Engine.Render(engine.RenderInput{Instance: s.inst.DeepCopy(), Release: s.release, AgentImage: r.AgentImage, Archive: s.archive})
	if err != nil {
		s.fail(ReasonRenderFailed, fmt.Sprintf("the %s engine could not render this instance: %v", r.Engine.Name(), err))
		return true, nil
	}
	if r.NetworkPolicy != nil {
		objs = append(objs, netpol.Render(netpol.Input{Engine: r.Engine.Name(), Instance: s.inst, Ports: r.Engine.Ports(), Operator: *r.NetworkPolicy}))
	}
	for _, o := range objs {
		if err := engine.Decorate(r.Scheme, r.Engine.Name(), s.inst, s.release.Version, o); err != nil {
			return false, err
		}
	}
	s.children = objs
	return false, nil
}

// ChildTypes are the kinds of an engine's instances' children: those the engine renders and those
// the framework adds for every instance (the NetworkPolicy). The framework's are watched, cached
// and pruned whether or not they are rendered, so that turning one off removes what was rendered
// before.
func ChildTypes(e engine.Engine) []client.Object {
	return slices.Concat(e.ChildTypes(), []client.Object{&networkingv1.NetworkPolicy{}})
}
