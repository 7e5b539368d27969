package instance

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// ReasonAgentUpgrade is the pending restart of pods whose agent is older than the operator.
const ReasonAgentUpgrade = "AgentUpgrade"

// pinAgent keeps the agent the instance's pods run across an operator upgrade. The agent's init
// container takes the operator's image, so a new operator would change every StatefulSet's pod
// template and every supervisor would roll its pods: the whole fleet restarting at once, unasked.
// Instead, a rendered StatefulSet whose pod template differs from the live one only by the agent's
// image keeps the live image, and the instance lists the new agent as a pending restart. When the
// template differs in anything else (the instance's own spec changed), the pods restart anyway,
// and the new agent comes with that restart.
func (r *Reconciler) pinAgent(ctx context.Context, s *scope) (bool, error) {
	s.pending, s.pendingChecked = nil, true
	for i, o := range s.children {
		sts, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		want := workload.AgentInit(&sts.Spec.Template.Spec)
		if want == nil {
			continue
		}
		live := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(sts), live); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return false, err
		}
		running := workload.AgentInit(&live.Spec.Template.Spec)
		if running == nil || running.Image == want.Image {
			continue
		}
		pinned := sts.DeepCopy()
		workload.AgentInit(&pinned.Spec.Template.Spec).Image = running.Image
		same, err := sameTemplate(live, pinned)
		if err != nil {
			return false, err
		}
		if !same {
			continue
		}
		s.children[i] = pinned
		if len(s.pending) == 0 { // one entry per reason: the first StatefulSet's says it
			s.pending = append(s.pending, v1alpha1.PendingRestart{Reason: ReasonAgentUpgrade,
				Message: fmt.Sprintf("the pods of %s run the agent from %s; the agent from %s comes with their next restart", sts.Name, running.Image, want.Image)})
		}
	}
	return false, nil
}

// sameTemplate reports whether the live pod template already holds every field of want's, as
// apply.Contains decides whether to write at all.
func sameTemplate(live, want *appsv1.StatefulSet) (bool, error) {
	l, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&live.Spec.Template)
	if err != nil {
		return false, err
	}
	w, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&want.Spec.Template)
	if err != nil {
		return false, err
	}
	return apply.Contains(l, w), nil
}
