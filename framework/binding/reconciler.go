// Package binding reconciles ServiceBindings for every engine that implements
// engine.UserManager: a finalizer first, then the instance and the namespace policy, the Secret
// (the password is written there before any user is created with it), the engine's user, and the
// revocation of users a rotation replaced once their overlap has passed.
package binding

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=servicebindings,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=datafleet.dev,resources=servicebindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=servicebindings/finalizers,verbs=update

// DefaultOverlap is how long replaced credentials keep working when the binding does not say.
const DefaultOverlap = time.Hour

// Resync is how often a bound binding is looked at again, so a user dropped by hand comes back.
const Resync = 10 * time.Minute

// Reconciler reconciles the ServiceBindings of every enabled engine.
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache, which holds only the Secrets Datafleet labelled: it finds
	// a Secret of the binding's name that someone else created.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	// Engines are the enabled engines by name.
	Engines  map[string]engine.Engine
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	// own remembers what this reconciler's last writes to each binding replaced.
	own apply.OwnWrites
}

// scope is what one reconcile learned; status is derived from it once, at the end.
type scope struct {
	b        *v1alpha1.ServiceBinding
	reason   string
	message  string
	ready    bool
	requeue  time.Duration
	creds    *credentials
	revoked  bool   // the binding's users and Secret were taken away
	finished bool   // the binding is gone: no status to write
	read     string // the binding's resourceVersion as the reconcile read it
}

func (s *scope) notReady(reason, format string, args ...any) {
	s.ready, s.reason, s.message = false, reason, fmt.Sprintf(format, args...)
}

// Reconcile drives one binding toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	b := &v1alpha1.ServiceBinding{}
	if err := r.Client.Get(ctx, req.NamespacedName, b); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.own.Stale(req.NamespacedName, b.ResourceVersion) {
		return apply.StaleRead()
	}
	s := &scope{b: b, read: b.ResourceVersion}
	defer func() {
		if s.finished {
			r.own.Gone(req.NamespacedName)
			return
		}
		if err := r.writeStatus(ctx, s, retErr); err != nil && retErr == nil {
			retErr = err
		}
		if retErr == nil && s.requeue > 0 {
			res.RequeueAfter = s.requeue
		}
		res, retErr = apply.QuietConflict(res, retErr)
	}()
	if !b.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, s)
	}
	if err := apply.AddFinalizer(ctx, r.Client, b, Finalizer); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.bind(ctx, s)
}

// target is the instance a binding refers to, with what the binding may do with it.
type target struct {
	inst  *v1alpha1.ServiceInstance
	users engine.UserManager
	// agents reaches the instance's agents; without the instance's CA (not made yet, or
	// unreadable) it reaches none, and the engine's call says so.
	agents fwagent.Dialer
}

func (r *Reconciler) newTarget(ctx context.Context, inst *v1alpha1.ServiceInstance, users engine.UserManager) *target {
	agents, err := certs.AgentDialer(ctx, r.Client, inst.Namespace, inst.Name, r.now())
	if err != nil {
		log.FromContext(ctx).V(1).Info("no client certificate for the instance's agents yet", "reason", err.Error())
	}
	return &target{inst: inst, users: users, agents: agents}
}

// resolve finds the instance and its engine's UserManager and checks the binding against them.
// A nil target with a nil error means the scope says why not.
//
// From another namespace, an instance that does not exist and one that does not allow the
// binding look the same, and neither names its engine: a binding learns nothing about a namespace
// that did not invite it. (Only when the operator does not run the instance's engine, or the
// engine has no users, do the engine's reasons say so: the binding must then wait for an
// operator that can drop its users.)
func (r *Reconciler) resolve(ctx context.Context, s *scope) (*target, error) {
	b := s.b
	key := InstanceKey(b)
	inst := &v1alpha1.ServiceInstance{}
	err := r.Client.Get(ctx, key, inst)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	exists := err == nil
	if key.Namespace != b.Namespace && (!exists || !Allowed(inst, b.Namespace)) {
		if users, ok := r.Engines[inst.Spec.Engine].(engine.UserManager); !exists || ok {
			s.notReady(ReasonNamespaceNotAllowed, "ServiceInstance %s does not exist or does not allow bindings from namespace %q: "+
				"its owner can add the namespace to spec.bindingPolicy.allowedNamespaces", key, b.Namespace)
			if !exists {
				return nil, nil
			}
			return r.newTarget(ctx, inst, users), nil // what the binding had is revoked
		}
	}
	if !exists {
		s.notReady(ReasonInstanceNotFound, "ServiceInstance %s does not exist", key)
		return nil, nil
	}
	e, ok := r.Engines[inst.Spec.Engine]
	if !ok {
		s.notReady(ReasonEngineNotEnabled, "the operator does not run the %q engine of ServiceInstance %s", inst.Spec.Engine, key)
		return nil, nil
	}
	users, ok := e.(engine.UserManager)
	if !ok {
		s.notReady(ReasonBindingsNotSupported, "the %s engine does not support bindings", inst.Spec.Engine)
		return nil, nil
	}
	t := r.newTarget(ctx, inst, users)
	if !slices.Contains(users.Roles(), b.Spec.Role) {
		s.notReady(ReasonRoleNotSupported, "the %s engine does not support role %q; it supports %v", inst.Spec.Engine, b.Spec.Role, users.Roles())
		return t, nil
	}
	if msg := checkTarget(b, users); msg != "" {
		s.notReady(ReasonInvalidSpec, "%s", msg)
		return t, nil
	}
	if err := users.CheckTarget(b); err != nil {
		s.notReady(ReasonReservedTarget, "%v", err)
		return t, nil
	}
	if refusal := CheckGrant(inst, b, users); refusal != nil {
		s.notReady(refusal.Reason, "%s", refusal.Message)
	}
	return t, nil
}

// bind: the instance and policy, the Secret, the user, then the revocation of replaced users.
func (r *Reconciler) bind(ctx context.Context, s *scope) error {
	b := s.b
	t, err := r.resolve(ctx, s)
	if err != nil || t == nil {
		return err
	}
	secret, err := r.ownSecret(ctx, s)
	if err != nil || s.reason == ReasonSecretConflict {
		return err
	}
	if s.reason != "" {
		// A binding that may no longer bind loses what it had: its namespace is no longer allowed,
		// the instance's policy no longer grants its role or target, or its target is one no
		// binding may have (a binding admitted before the rule existed).
		if revokes(s.reason) && secret != nil {
			s.revoked = true
			return r.revoke(ctx, s, t, secret)
		}
		return nil
	}
	if !instanceServes(t.inst) {
		s.notReady(ReasonInstanceNotReady, "ServiceInstance %s is %s; the binding is made once it is Ready", InstanceKey(b), phaseOf(t.inst))
		return nil
	}
	var caPEM []byte
	if t.inst.TLSEnabled() {
		cm := &corev1.ConfigMap{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.inst.Namespace, Name: certs.CAName(t.inst.Name)}, cm); err != nil {
			if !apierrors.IsNotFound(err) {
				return err
			}
			s.notReady(ReasonInstanceNotReady, "ServiceInstance %s has not published its CA yet", InstanceKey(b))
			return nil
		}
		caPEM = []byte(cm.Data[certs.CAKey])
	}

	in := r.usersInput(t, b)
	now := r.now()
	c, ok := readCredentials(secret, in.Stem)
	gen := rotationGeneration(b)
	rotated := ok && c.generation != gen
	switch {
	case !ok:
		c = credentials{generation: gen, user: names.UserName(in.Stem, gen), password: secrets.Password()}
	case rotated:
		// Rotation: a new user with a new password; the current one stays for the overlap.
		c = credentials{generation: gen, user: names.UserName(in.Stem, gen), password: secrets.Password(),
			previousUser: c.user, previousExpires: now.Add(overlap(b))}
	}
	// The previous user's overlap is over: it is dropped below, and the Secret stops naming it.
	expired := c.previousUser != "" && !now.Before(c.previousExpires)
	keep := []string{c.user}
	if c.previousUser != "" && !expired {
		keep = append(keep, c.previousUser)
	}

	// The Secret first: a password only ever reaches the engine once it is stored.
	conn := t.users.Connection(in, c.user, c.password)
	if secret, err = r.writeSecret(ctx, b, secret, renderSecret(b, t.users.BindingType(), conn, c, caPEM)); err != nil {
		return err
	}
	if rotated {
		r.event(b, corev1.EventTypeNormal, EventRotated, "Rotate",
			"published the credentials of generation %d; the previous ones work until %s", gen, c.previousExpires.UTC().Format(time.RFC3339))
	}
	if err := t.users.EnsureUser(ctx, in, c.user, c.password); err != nil {
		s.notReady(ReasonUserFailed, "creating the user %s: %v", c.user, err)
		return err
	}
	if err := t.users.DropUsers(ctx, in, keep); err != nil {
		s.notReady(ReasonUserFailed, "dropping the binding's other users: %v", err)
		return err
	}
	if expired {
		dropped := c.previousUser
		c.previousUser, c.previousExpires = "", time.Time{}
		if _, err := r.writeSecret(ctx, b, secret, renderSecret(b, t.users.BindingType(), conn, c, caPEM)); err != nil {
			return err
		}
		r.event(b, corev1.EventTypeNormal, EventRevoked, "Revoke", "dropped the user %s replaced by a rotation", dropped)
	}
	s.ready, s.reason, s.message = true, ReasonBound, fmt.Sprintf("user %s can connect with the Secret %s", c.user, secretName(b))
	s.creds = &c
	s.requeue = Resync
	if c.previousUser != "" {
		s.requeue = min(s.requeue, c.previousExpires.Sub(now)+time.Second)
	}
	return nil
}

// ownSecret reads the binding's Secret. A Secret of that name that the binding did not create is
// never touched: the binding says so and waits.
func (r *Reconciler) ownSecret(ctx context.Context, s *scope) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: s.b.Namespace, Name: secretName(s.b)}
	err := r.Client.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		err = r.APIReader.Get(ctx, key, secret)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(secret, s.b) {
		s.notReady(ReasonSecretConflict, "a Secret named %s exists and does not belong to this binding: "+
			"delete it or set spec.secretName to another name", secretName(s.b))
		return nil, nil
	}
	return secret, nil
}

// writeSecret creates the Secret or updates it when it differs from want, and returns it as
// written; it writes nothing when they are the same.
func (r *Reconciler) writeSecret(ctx context.Context, b *v1alpha1.ServiceBinding, live, want *corev1.Secret) (*corev1.Secret, error) {
	if live == nil {
		if err := controllerutil.SetControllerReference(b, want, r.Scheme); err != nil {
			return nil, err
		}
		return want, r.Client.Create(ctx, want)
	}
	if equality.Semantic.DeepEqual(live.Data, want.Data) && live.Type == want.Type &&
		equality.Semantic.DeepEqual(live.Annotations, want.Annotations) {
		return live, nil
	}
	if live.Type != want.Type {
		// The type is immutable; it changes only if the engine's binding type did.
		return nil, fmt.Errorf("the Secret %s has type %s, not %s: delete it to let the operator write it again", live.Name, live.Type, want.Type)
	}
	live = live.DeepCopy()
	live.Data, live.Annotations = want.Data, want.Annotations
	return live, r.Client.Update(ctx, live)
}

// revokes says which reasons take away what a binding had.
func revokes(reason string) bool {
	switch reason {
	case ReasonNamespaceNotAllowed, ReasonReservedTarget, ReasonRoleNotAllowed, ReasonTargetNotShared:
		return true
	}
	return false
}

// revoke drops every user of the binding and deletes its Secret.
func (r *Reconciler) revoke(ctx context.Context, s *scope, t *target, secret *corev1.Secret) error {
	if err := t.users.DropUsers(ctx, r.usersInput(t, s.b), nil); err != nil {
		return fmt.Errorf("dropping the binding's users: %w", err)
	}
	return apply.Delete(ctx, r.Client, secret)
}

func (r *Reconciler) usersInput(t *target, b *v1alpha1.ServiceBinding) engine.UsersInput {
	return engine.UsersInput{Instance: t.inst, Client: r.Client, Binding: b,
		Release: catalog.Release{Version: t.inst.Status.Version, Image: t.inst.Status.Image},
		Stem:    names.UserStem(b.Namespace, b.Name), Agents: t.agents}
}

// writeStatus writes the status this reconcile computed, if it differs.
func (r *Reconciler) writeStatus(ctx context.Context, s *scope, reconcileErr error) error {
	b := s.b
	st := b.Status.DeepCopy()
	if s.reason == "" && reconcileErr != nil {
		s.notReady(ReasonUserFailed, "%v", reconcileErr)
	}
	if s.reason != "" {
		status := metav1.ConditionFalse
		if s.ready {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status,
			Reason: s.reason, Message: s.message, ObservedGeneration: b.Generation})
	}
	if s.ready {
		st.ObservedGeneration = b.Generation
		if st.Binding == nil || st.CredentialGeneration != s.creds.generation {
			// New credentials, ready for the first time. Bindings made ready before the field
			// existed have none until their next rotation: no write for a settled binding.
			st.CredentialsIssued = &metav1.Time{Time: r.now()}
		}
		st.Binding = &v1alpha1.BindingSecretReference{Name: secretName(b)}
		st.CredentialGeneration = s.creds.generation
		st.PreviousCredentialsExpire = nil
		if s.creds.previousUser != "" {
			st.PreviousCredentialsExpire = &metav1.Time{Time: s.creds.previousExpires}
		}
	}
	if s.revoked {
		st.Binding, st.CredentialGeneration, st.PreviousCredentialsExpire, st.CredentialsIssued = nil, 0, nil, nil
	}
	key := client.ObjectKeyFromObject(b)
	if equality.Semantic.DeepEqual(*st, b.Status) {
		if b.ResourceVersion != s.read { // the finalizer
			r.own.Wrote(key, s.read, s.read)
		}
		return nil
	}
	before := b.DeepCopy()
	b.Status = *st
	if err := apply.PatchStatus(ctx, r.Client, before, b); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.own.Wrote(key, s.read, before.ResourceVersion)
	return nil
}

func (r *Reconciler) event(b *v1alpha1.ServiceBinding, kind, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, kind, reason, action, format, args...)
	}
}

func (r *Reconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock.Now()
	}
	return time.Now()
}

// instanceServes: bindings are made while the instance serves clients, also during a roll.
func instanceServes(inst *v1alpha1.ServiceInstance) bool {
	switch inst.Status.Phase {
	case v1alpha1.PhaseReady, v1alpha1.PhaseUpdating:
		return inst.DeletionTimestamp.IsZero()
	}
	return false
}

func phaseOf(inst *v1alpha1.ServiceInstance) string {
	if !inst.DeletionTimestamp.IsZero() {
		return "being deleted"
	}
	if inst.Status.Phase == "" {
		return "not reconciled yet"
	}
	return string(inst.Status.Phase)
}

func rotationGeneration(b *v1alpha1.ServiceBinding) int64 {
	if b.Spec.Rotation == nil {
		return 0
	}
	return b.Spec.Rotation.Generation
}

func overlap(b *v1alpha1.ServiceBinding) time.Duration {
	if b.Spec.Rotation == nil || b.Spec.Rotation.Overlap == nil {
		return DefaultOverlap
	}
	return b.Spec.Rotation.Overlap.Duration
}
