package instance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/maintenance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// The restarts the operator holds back: changes to the pods nobody asked for in the instance's spec.
const (
	// ReasonAgentUpgrade: a new operator's agent (the init container takes the operator's image).
	ReasonAgentUpgrade = "AgentUpgrade"
	// ReasonImagePatch: the catalog changed the image of the instance's version (a patch release).
	ReasonImagePatch = "ImagePatch"
	// ReasonAgentResources: the agent's init container takes the engine container's resources (so
	// that requests equal to limits give the Guaranteed QoS class); releases before that rendered
	// it without, and their pods keep it so until a restart.
	ReasonAgentResources = "AgentResources"
	// ReasonAgentUpgradeFailed: the operator's agent did not survive taking over in a pod
	// (phase_agents.go). It is held, but never released: this operator's agent does not reach
	// those pods, in place or by a restart; the next operator release tries again.
	ReasonAgentUpgradeFailed = "AgentUpgradeFailed"
)

// holdRestarts keeps the pods as they run across changes the instance's spec did not ask for. A
// new operator release is a new agent image in every StatefulSet's pod template, and a catalog
// edit a new image for every instance on that version: applied at once, the whole fleet (or every
// instance of a version) would restart together, unasked. Instead, a rendered StatefulSet whose
// pod template differs from the live one only by such images keeps the live ones, and the
// instance lists them in status.pendingRestarts. When the template differs in anything else (the
// instance's own spec changed), the pods restart anyway and take the new images along. Inside the
// instance's maintenance window (or the platform's) they are applied, once the fleet's rollout
// admits the instance: the pods restart one at a time, as for any template change.
func (r *Reconciler) holdRestarts(ctx context.Context, s *scope) (bool, error) {
	s.pending, s.pendingChecked, s.runningImage = nil, true, ""
	pins := map[int]*appsv1.StatefulSet{}
	var held []v1alpha1.PendingRestart
	for i, o := range s.children {
		sts, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		pinned, changes, err := r.pinned(ctx, sts, s)
		if err != nil {
			return false, err
		}
		if pinned == nil {
			continue
		}
		pins[i] = pinned
		for _, c := range changes { // one entry per reason: the first StatefulSet's says it
			if !slices.ContainsFunc(held, func(h v1alpha1.PendingRestart) bool { return h.Reason == c.Reason }) {
				held = append(held, c)
			}
		}
	}
	if len(pins) == 0 {
		return false, nil
	}
	if len(held) == 0 { // an agent image alone, and every agent was upgraded in place
		for i, p := range pins {
			s.children[i] = p
		}
		return false, nil
	}
	window, when := r.window(s)
	next := time.Duration(0)
	if window != nil {
		next = window.Next(r.now()).Sub(r.now())
	}
	failed := slices.IndexFunc(held, func(h v1alpha1.PendingRestart) bool { return h.Reason == ReasonAgentUpgradeFailed })
	if failed >= 0 { // listed as it is, never released
		s.pending = append(s.pending, held[failed])
		held = slices.Delete(held, failed, failed+1)
	}
	if window != nil && window.Open(r.now()) && len(held) > 0 {
		ok, why := true, ""
		if r.Rollout != nil {
			ok, why = r.Rollout.Admit(client.ObjectKeyFromObject(s.inst), r.now())
		}
		if ok { // applied now, but for an agent that did not survive
			s.runningImage = ""
			for _, h := range held {
				s.releasing = append(s.releasing, h.Reason)
			}
			if failed >= 0 {
				for i, p := range pins {
					s.children[i] = keepAgent(s.children[i].(*appsv1.StatefulSet), p)
				}
			}
			return false, nil
		}
		when, next = "in this maintenance window, once the fleet's rollout admits them ("+why+")", r.Rollout.Poll()
	}
	for i, p := range pins {
		s.children[i] = p
	}
	for _, h := range held {
		h.Message += " " + when
		s.pending = append(s.pending, h)
	}
	if len(held) > 0 {
		s.requeue(next)
	}
	return false, nil
}

// keepAgent is sts with the agent image of pinned.
func keepAgent(sts, pinned *appsv1.StatefulSet) *appsv1.StatefulSet {
	want, keep := workload.AgentInit(&sts.Spec.Template.Spec), workload.AgentInit(&pinned.Spec.Template.Spec)
	if want == nil || keep == nil || want.Image == keep.Image {
		return sts
	}
	sts = sts.DeepCopy()
	workload.AgentInit(&sts.Spec.Template.Spec).Image = keep.Image
	return sts
}

// pinned is sts with the images its live pods run, when images nobody asked for are the only
// difference in the pod template (nil otherwise), and what it holds back. A container's image is
// held only while the instance's version is the one the live StatefulSet was made for: a new
// spec.version brings its image with it. A new agent image is pinned too, but is a pending restart
// only for the pods whose agents cannot be upgraded in place (s.agentsStuck, once upgradeAgents
// looked): the others run the operator's agent already, and need no restart for it. Pods whose
// new agent did not survive taking over (s.agentsFailed) are listed, not to be released.
func (r *Reconciler) pinned(ctx context.Context, sts *appsv1.StatefulSet, s *scope) (*appsv1.StatefulSet, []v1alpha1.PendingRestart, error) {
	live := &appsv1.StatefulSet{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(sts), live); apierrors.IsNotFound(err) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	// Copied only once an image differs: this runs on every reconcile of every instance.
	var pinned *appsv1.StatefulSet
	pin := func() *corev1.PodSpec {
		if pinned == nil {
			pinned = sts.DeepCopy()
		}
		return &pinned.Spec.Template.Spec
	}
	var held []v1alpha1.PendingRestart
	engineImage := ""
	wantInit, runInit := workload.AgentInit(&sts.Spec.Template.Spec), workload.AgentInit(&live.Spec.Template.Spec)
	if wantInit != nil && runInit != nil && wantInit.Image != runInit.Image {
		switch {
		case !s.agentsLooked:
			held = append(held, v1alpha1.PendingRestart{Reason: ReasonAgentUpgrade,
				Message: fmt.Sprintf("the pods of %s run the agent from %s; the agent from %s comes", sts.Name, runInit.Image, wantInit.Image)})
		case len(s.agentsStuck) > 0:
			held = append(held, v1alpha1.PendingRestart{Reason: ReasonAgentUpgrade,
				Message: fmt.Sprintf("the agents of %s predate in-place upgrades; the agent from %s comes", strings.Join(s.agentsStuck, ", "), wantInit.Image)})
		}
		if len(s.agentsFailed) > 0 {
			held = append(held, v1alpha1.PendingRestart{Reason: ReasonAgentUpgradeFailed,
				Message: fmt.Sprintf("the agent from %s did not survive taking over on %s: it is not applied to them, in place or by a restart; the next operator release tries again",
					wantInit.Image, strings.Join(s.agentsFailed, ", "))})
		}
		workload.AgentInit(pin()).Image = runInit.Image
	}
	if wantInit != nil && runInit != nil && !apiequality.Semantic.DeepEqual(wantInit.Resources, runInit.Resources) {
		// Only the operator's rendering of the init container changed (a spec change of the
		// resources changes the engine container too, and restarts the pods anyway).
		held = append(held, v1alpha1.PendingRestart{Reason: ReasonAgentResources,
			Message: fmt.Sprintf("the agent's init container in the pods of %s gets the engine container's resources (the Guaranteed QoS class needs them on every container)", sts.Name)})
		workload.AgentInit(pin()).Resources = runInit.Resources
	}
	if version := sts.Labels[names.VersionLabel]; version != "" && live.Labels[names.VersionLabel] == version {
		for i, want := range sts.Spec.Template.Spec.Containers {
			running := container(live.Spec.Template.Spec.Containers, want.Name)
			if running == nil || running.Image == want.Image {
				continue
			}
			if len(held) == 0 || held[len(held)-1].Reason != ReasonImagePatch {
				held = append(held, v1alpha1.PendingRestart{Reason: ReasonImagePatch,
					Message: fmt.Sprintf("the pods of %s run %s; the catalog's %s for version %s comes", sts.Name, running.Image, want.Image, version)})
			}
			if want.Image == s.release.Image {
				engineImage = running.Image
			}
			pin().Containers[i].Image = running.Image
		}
	}
	if pinned == nil {
		return nil, nil, nil
	}
	same, err := sameTemplate(live, pinned)
	if err != nil || !same {
		return nil, nil, err
	}
	if engineImage != "" {
		s.runningImage = engineImage // status.image says what runs while the catalog's is held back
	}
	return pinned, held, nil
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// window is the instance's maintenance window, else the platform's (nil when neither), and when a
// pending restart happens, in words. A window the reconciler cannot parse was refused by validate
// already.
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
