package instance

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/maintenance"
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
// and the new agent comes with that restart. Inside the instance's maintenance window (or the
// platform's) the new agent is applied: the pods restart, one at a time, as for any template change.
func (r *Reconciler) pinAgent(ctx context.Context, s *scope) (bool, error) {
	s.pending, s.pendingChecked = nil, true
	pins := map[int]*appsv1.StatefulSet{}
	var first string
	for i, o := range s.children {
		sts, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		pinned, running, err := r.pinned(ctx, sts)
		if err != nil {
			return false, err
		}
		if pinned != nil {
			pins[i] = pinned
			if first == "" {
				want := workload.AgentInit(&sts.Spec.Template.Spec).Image
				first = fmt.Sprintf("the pods of %s run the agent from %s; the agent from %s comes", sts.Name, running, want)
			}
		}
	}
	if len(pins) == 0 {
		return false, nil
	}
	window, when := r.window(s)
	if window != nil && window.Open(r.now()) {
		return false, nil // the new agent is applied now
	}
	for i, p := range pins {
		s.children[i] = p
	}
	s.pending = []v1alpha1.PendingRestart{{Reason: ReasonAgentUpgrade, Message: first + " " + when}}
	if window != nil {
		s.requeue(window.Next(r.now()).Sub(r.now()))
	}
	return false, nil
}

// pinned is sts with the agent image its live pods run, when that is the only difference in the
// pod template (nil otherwise), and that image.
func (r *Reconciler) pinned(ctx context.Context, sts *appsv1.StatefulSet) (*appsv1.StatefulSet, string, error) {
	want := workload.AgentInit(&sts.Spec.Template.Spec)
	if want == nil {
		return nil, "", nil
	}
	live := &appsv1.StatefulSet{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(sts), live); apierrors.IsNotFound(err) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	running := workload.AgentInit(&live.Spec.Template.Spec)
	if running == nil || running.Image == want.Image {
		return nil, "", nil
	}
	pinned := sts.DeepCopy()
	workload.AgentInit(&pinned.Spec.Template.Spec).Image = running.Image
	same, err := sameTemplate(live, pinned)
	if err != nil || !same {
		return nil, "", err
	}
	return pinned, running.Image, nil
}

// window is the instance's maintenance window, else the platform's (nil when neither), and when a
// pending restart happens, in words. A window the reconciler cannot parse was
// refused by validate already.
func (r *Reconciler) window(s *scope) (*maintenance.Window, string) {
	w, whose := s.inst.Spec.MaintenanceWindow, "the instance's"
	if w == nil {
		w, whose = r.MaintenanceWindow, "the platform's"
	}
	if w == nil {
		return nil, "with the next restart the spec asks for (no maintenance window is set)"
	}
	p, err := maintenance.Parse(*w)
	if err != nil {
		return nil, fmt.Sprintf("with the next restart the spec asks for (%s maintenance window is invalid: %v)", whose, err)
	}
	return p, fmt.Sprintf("with the next restart the spec asks for, or in %s maintenance window at %s", whose, p.Next(r.now()).UTC().Format(time.RFC3339))
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
