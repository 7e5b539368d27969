package instance

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/catalog"
)

// computeStatus derives the new status from the previous one and what this reconcile learned.
// Pure: no clock (conditions keep their transition times unless their status flips) and no I/O.
func computeStatus(prev v1alpha1.ServiceInstanceStatus, inst *v1alpha1.ServiceInstance, s *scope, reconcileErr error) v1alpha1.ServiceInstanceStatus {
	st := *prev.DeepCopy()
	gen := inst.Generation
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	if s.support != nil {
		status := metav1.ConditionTrue
		if !s.support.Supported {
			status = metav1.ConditionFalse
		}
		set(v1alpha1.ConditionVersionSupported, status, s.support.Reason, s.support.Message)
	}
	if c := storageCondition(s); c != nil {
		set(c.Type, c.Status, c.Reason, c.Message)
	}
	switch c := archivingCondition(s); {
	case c != nil:
		set(c.Type, c.Status, c.Reason, c.Message)
	case inst.Continuous() == nil:
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionContinuousArchiving)
	}
	switch {
	case inst.Continuous() == nil || s.archiveRefused != nil:
		st.RecoverableWindow = nil
	case s.windowChecked:
		var archived *time.Time
		if s.observation != nil && s.observation.Archive != nil {
			archived = s.observation.Archive.ArchivedThrough
		}
		st.RecoverableWindow = recoverableWindow(prev.RecoverableWindow, s.oldestBase, archived, s.archive.Timeout, s.windowNow)
	}
	if s.paused {
		set(v1alpha1.ConditionPaused, metav1.ConditionTrue, ReasonPaused,
			"spec.paused: the operator changes nothing of this instance until it is false; the status is as last observed")
		if st.Phase == "" {
			st.Phase = v1alpha1.PhasePending
		}
		return st
	}
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionPaused)
	if s.tlsChecked {
		st.TLS = s.tls
	}
	if s.pendingChecked {
		st.PendingRestarts = s.pending
		if len(s.pending) > 0 {
			set(v1alpha1.ConditionRestartPending, metav1.ConditionTrue, s.pending[0].Reason, s.pending[0].Message)
		} else {
			meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionRestartPending)
		}
	}
	if s.release.Image != "" {
		st.Version, st.Image = s.release.Version, s.release.Image
		if s.runningImage != "" {
			st.Image = s.runningImage
		}
	}

	switch {
	case s.failure != nil:
		st.Phase = v1alpha1.PhaseFailed
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, s.failure.reason, s.failure.message)
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, s.failure.reason, "waiting for the spec or the catalog to change")
		set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, s.failure.reason, "")
	case reconcileErr != nil:
		// A transient error (API conflict, timeout): say so, keep the phase, and let the retry decide.
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonApplyFailed, reconcileErr.Error())
	case s.observation != nil:
		obs := s.observation
		st.Replicas, st.ReadyReplicas = obs.Replicas, obs.ReadyReplicas
		st.CurrentPrimary, st.Endpoints, st.Members = obs.CurrentPrimary, obs.Endpoints, obs.Members
		wasUp := prev.Phase == v1alpha1.PhaseReady || prev.Phase == v1alpha1.PhaseUpdating || prev.Phase == v1alpha1.PhaseDegraded
		// A restart released from hold (a maintenance window) is an update the platform scheduled.
		specChanged := s.applied && prev.ObservedGeneration != 0 && prev.ObservedGeneration < gen || len(s.releasing) > 0
		switch {
		case obs.Ready:
			st.Phase = v1alpha1.PhaseReady
		case !wasUp:
			st.Phase = v1alpha1.PhaseProvisioning
		case specChanged || prev.Phase == v1alpha1.PhaseUpdating:
			st.Phase = v1alpha1.PhaseUpdating
		default:
			st.Phase = v1alpha1.PhaseDegraded
		}
		readyMsg := fmt.Sprintf("%d/%d replicas ready", obs.ReadyReplicas, obs.Replicas)
		if obs.Ready {
			set(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonReady, readyMsg)
		} else {
			reason, msg := obs.Reason, obs.Message
			if reason == "" {
				reason, msg = ReasonNotReady, readyMsg
			}
			set(v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		}
		switch st.Phase {
		case v1alpha1.PhaseProvisioning:
			set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonProvisioning, "creating the instance")
		case v1alpha1.PhaseUpdating:
			set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonUpdating, "applying a spec change")
		default:
			set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonSettled, "")
		}
		if st.Phase == v1alpha1.PhaseDegraded {
			set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, obs.Reason, obs.Message)
		} else {
			set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonReady, "")
		}
	}
	if st.Phase == "" {
		st.Phase = v1alpha1.PhasePending
	}
	// observedGeneration moves only when this generation's spec was applied in full.
	if s.applied && reconcileErr == nil {
		st.ObservedGeneration = gen
	}
	return st
}

// writeStatus patches status when it changed (with optimistic locking, so a status computed from a
// stale read is never written) and records an event when the phase changed.
func (r *Reconciler) writeStatus(ctx context.Context, orig *v1alpha1.ServiceInstance, s *scope, reconcileErr error) error {
	if s.deleted {
		return nil
	}
	var next v1alpha1.ServiceInstanceStatus
	if s.deleting != nil {
		next = *s.deleting
	} else {
		next = computeStatus(orig.Status, s.inst, s, reconcileErr)
	}
	key := client.ObjectKeyFromObject(orig)
	if equality.Semantic.DeepEqual(orig.Status, next) {
		if s.inst.ResourceVersion != orig.ResourceVersion { // the finalizer, an annotation
			r.own.Wrote(key, orig.ResourceVersion, orig.ResourceVersion)
		}
		return nil
	}
	// The patch is made against the latest version this reconcile knows: the one its own write to
	// the instance (the finalizer, an annotation) returned, when that still holds the status it
	// read; else the one it read, so that a status computed from a stale read is refused.
	base := orig
	if s.inst.ResourceVersion != orig.ResourceVersion && equality.Semantic.DeepEqual(s.inst.Status, orig.Status) {
		base = s.inst
	}
	patched := s.inst.DeepCopy()
	patched.Status = next
	if err := apply.PatchStatus(ctx, r.Client, base, patched); err != nil {
		return describeErr("writing status", client.IgnoreNotFound(err))
	}
	r.own.Wrote(key, orig.ResourceVersion, s.inst.ResourceVersion)
	if next.Phase != orig.Status.Phase {
		r.recordPhase(patched, next)
	}
	r.recordSupport(patched, orig.Status, next)
	return nil
}

// recordSupport warns, once, when the instance's version enters its warning window or passes its
// sundown: the condition says so for as long as it lasts, the event reaches whoever watches events.
func (r *Reconciler) recordSupport(inst *v1alpha1.ServiceInstance, prev, next v1alpha1.ServiceInstanceStatus) {
	was, now := meta.FindStatusCondition(prev.Conditions, v1alpha1.ConditionVersionSupported), meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionVersionSupported)
	if r.Recorder == nil || now == nil || was != nil && was.Reason == now.Reason {
		return
	}
	if now.Reason == catalog.ReasonNearingSundown || now.Reason == catalog.ReasonPastSundown {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, now.Reason, "VersionSupport", "%s", now.Message)
	}
}

func (r *Reconciler) recordPhase(inst *v1alpha1.ServiceInstance, st v1alpha1.ServiceInstanceStatus) {
	if r.Recorder == nil {
		return
	}
	kind, note := corev1.EventTypeNormal, fmt.Sprintf("phase is now %s", st.Phase)
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady); c != nil && c.Message != "" {
		note += ": " + c.Message
	}
	if st.Phase == v1alpha1.PhaseFailed || st.Phase == v1alpha1.PhaseDegraded {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(inst, nil, kind, string(st.Phase), "Reconcile", "%s", note)
}
