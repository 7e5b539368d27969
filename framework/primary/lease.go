package primary

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Timing of the protocol. An agent renews every RenewInterval and fences itself when it has not
// renewed for FenceAfter; the operator treats the lease as expired LeaseDuration after the last
// renewal. The gap between FenceAfter and LeaseDuration absorbs clock skew and scheduling delay.
const (
	LeaseDuration = 10 * time.Second
	RenewInterval = 2 * time.Second
	FenceAfter    = 6 * time.Second
)

// Annotations on the lease.
const (
	// StepDownAnnotation asks the holder to step down; its value names the preferred successor
	// (or is empty for any).
	StepDownAnnotation = "datafleet.dev/step-down"
	// BootstrappedAnnotation records that the first primary created the instance's data, so that
	// a holder which lost its volume never starts an empty database in its place.
	BootstrappedAnnotation = "datafleet.dev/bootstrapped"
	// MembersAnnotation lists the instance's members and their pod IPs ("name=ip,…", sorted),
	// written by the operator: whom a holder asks to confirm it when it cannot reach the API
	// server (failsafe.go).
	MembersAnnotation = "datafleet.dev/members"
	// ConfirmersAnnotation lists the members the holder will ask (names, sorted), written by the
	// holder with each renewal. The operator elects none but these while the holder may still be
	// serving on their confirmation.
	ConfirmersAnnotation = "datafleet.dev/confirmers"
	// RecoveryAnnotation names the in-place restore the holder recovers the instance's data for
	// (from a physical backup in the store), written by the operator with the holder once every
	// member restarted for it (AssignRecovery). The members wait for it before they touch their data.
	RecoveryAnnotation = "datafleet.dev/recovery"
)

// State is what a lease says.
type State struct {
	Holder      string
	RenewTime   time.Time
	Duration    time.Duration
	Transitions int32
	// StepDown is set when the operator asked the holder to step down; StepDownTo names the
	// preferred successor.
	StepDown   bool
	StepDownTo string
	// Bootstrapped is set once the instance's data was created.
	Bootstrapped bool
	// Members are the instance's members and their pod IPs, as the operator last wrote them.
	Members map[string]string
	// Confirmers are the members the holder asks to confirm it; ConfirmersKnown is false when the
	// holder never said (an agent without failsafe, which fences by the clock alone).
	Confirmers      []string
	ConfirmersKnown bool
	// Recovery is the in-place restore the holder was named to recover for (RecoveryAnnotation).
	Recovery string
}

// Read returns the state of a lease.
func Read(l *coordinationv1.Lease) State {
	s := State{Holder: ptr.Deref(l.Spec.HolderIdentity, ""), Duration: LeaseDuration,
		Transitions: ptr.Deref(l.Spec.LeaseTransitions, 0)}
	if l.Spec.RenewTime != nil {
		s.RenewTime = l.Spec.RenewTime.Time
	}
	if d := l.Spec.LeaseDurationSeconds; d != nil {
		s.Duration = time.Duration(*d) * time.Second
	}
	s.StepDownTo, s.StepDown = l.Annotations[StepDownAnnotation]
	_, s.Bootstrapped = l.Annotations[BootstrappedAnnotation]
	s.Members = parseMembers(l.Annotations[MembersAnnotation])
	s.Recovery = l.Annotations[RecoveryAnnotation]
	var confirmers string
	if confirmers, s.ConfirmersKnown = l.Annotations[ConfirmersAnnotation]; confirmers != "" {
		s.Confirmers = strings.Split(confirmers, ",")
	}
	return s
}

// Electable says whether the operator may name member the new holder. While the last holder may
// still serve because its confirmers vouch for it (failsafe), only they may: each of them waits
// until what it vouched for has lapsed before it promotes, and a member the holder never asked
// could not know.
func (s State) Electable(member string) bool {
	return s.Holder == "" || !s.ConfirmersKnown || slices.Contains(s.Confirmers, member)
}

// formatMembers writes a MembersAnnotation value.
func formatMembers(members map[string]string) string {
	parts := make([]string, 0, len(members))
	for name, ip := range members {
		parts = append(parts, name+"="+ip)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func parseMembers(v string) map[string]string {
	if v == "" {
		return nil
	}
	m := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		name, ip, _ := strings.Cut(part, "=")
		m[name] = ip
	}
	return m
}

// SetMembers records the instance's members and their pod IPs (empty for a pod that has none
// yet) on the lease and returns the lease as the API server then has it; nothing is written when
// they are unchanged.
//
// The write is a merge patch of that one annotation, without the lease's resourceVersion: the
// addresses are the pods', not something read from the lease, and the holder renews every
// RenewInterval, so an update locked to the version in the operator's cache conflicted whenever a
// renewal had come in between (at 1,000 PostgreSQL instances on the scale harness, 1,023
// "Reconciler error"s while they converged, each a backoff for its instance). The holder's next
// renewal, made from the lease it last renewed, conflicts once and reads the lease anew, as after
// any write of the operator's.
func SetMembers(ctx context.Context, c client.Client, l *coordinationv1.Lease, members map[string]string) (*coordinationv1.Lease, error) {
	v := formatMembers(members)
	if l.Annotations[MembersAnnotation] == v {
		return l, nil
	}
	patched := l.DeepCopy()
	if patched.Annotations == nil {
		patched.Annotations = map[string]string{}
	}
	patched.Annotations[MembersAnnotation] = v
	if err := c.Patch(ctx, patched, client.MergeFrom(l)); err != nil {
		return nil, err
	}
	return patched, nil
}

// Vacant is true when nobody may be primary under this lease: it has no holder, or the holder
// has not renewed within the lease's duration.
func (s State) Vacant(now time.Time) bool {
	return s.Holder == "" || !now.Before(s.RenewTime.Add(s.Duration))
}

// ExpiresAt is when a held lease expires unless renewed.
func (s State) ExpiresAt() time.Time { return s.RenewTime.Add(s.Duration) }

// Ensure creates the lease if it does not exist. firstHolder becomes its holder only when it is
// created: the pod that bootstraps a new instance.
func Ensure(ctx context.Context, c client.Client, key types.NamespacedName, labels map[string]string,
	owner *metav1.OwnerReference, firstHolder string, now time.Time) (*coordinationv1.Lease, error) {
	l := &coordinationv1.Lease{}
	err := c.Get(ctx, key, l)
	if !apierrors.IsNotFound(err) {
		return l, err
	}
	l = &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: labels},
		Spec:       coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second))},
	}
	if owner != nil {
		l.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if firstHolder != "" {
		l.Spec.HolderIdentity = ptr.To(firstHolder)
		l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	}
	if err := c.Create(ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// Assign names holder as the primary and returns the updated lease. It refuses a lease that
// still has a live holder, and the update carries the lease's resourceVersion, so two operators
// (or a stale cache) cannot both assign it.
func Assign(ctx context.Context, c client.Client, l *coordinationv1.Lease, holder string, now time.Time) (*coordinationv1.Lease, error) {
	s := Read(l)
	if !s.Vacant(now) {
		return nil, &LiveHolderError{Holder: s.Holder}
	}
	l = l.DeepCopy()
	l.Spec.HolderIdentity = ptr.To(holder)
	l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	l.Spec.LeaseTransitions = ptr.To(s.Transitions + 1)
	delete(l.Annotations, StepDownAnnotation)
	if err := c.Update(ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// AssignRecovery names holder as the member that recovers the instance's data for the in-place
// restore id, and renews the lease for it. Unlike Assign it does not wait for a live holder's lease
// to lapse: the caller knows that every member that ran before the restore is gone (each pod
// restarted for it, and the restarted ones wait for this annotation before they start a server),
// so nobody serves under the lease.
func AssignRecovery(ctx context.Context, c client.Client, l *coordinationv1.Lease, holder, id string, now time.Time) (*coordinationv1.Lease, error) {
	s := Read(l)
	l = l.DeepCopy()
	if s.Holder != holder {
		l.Spec.HolderIdentity = ptr.To(holder)
		l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		l.Spec.LeaseTransitions = ptr.To(s.Transitions + 1)
	}
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[RecoveryAnnotation] = id
	delete(l.Annotations, StepDownAnnotation)
	if err := c.Update(ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// RequestStepDown asks the holder to step down in favour of successor.
func RequestStepDown(ctx context.Context, c client.Client, l *coordinationv1.Lease, successor string) error {
	if v, ok := l.Annotations[StepDownAnnotation]; ok && v == successor {
		return nil
	}
	l = l.DeepCopy()
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[StepDownAnnotation] = successor
	return c.Update(ctx, l)
}

// LiveHolderError is returned by Assign when the lease is held.
type LiveHolderError struct{ Holder string }

func (e *LiveHolderError) Error() string {
	return "the primary lease is held by " + e.Holder + " and has not expired"
}
