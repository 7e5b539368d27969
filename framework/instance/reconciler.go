package instance

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/netpol"
	"github.com/datafleet-dev/datafleet/framework/rollout"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=serviceinstances,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=serviceinstances/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=serviceinstances/finalizers,verbs=update
// +kubebuilder:rbac:groups=datafleet.dev,resources=versioncatalogs;serviceplans,verbs=get;list;watch
// +kubebuilder:rbac:groups=scheduling.k8s.io,resources=priorityclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler reconciles the ServiceInstances of one engine.
type Reconciler struct {
	// AgentImage is passed to the engine's Render (see engine.RenderInput).
	AgentImage string
	Client     client.Client
	// APIReader reads past the cache, which holds only what Datafleet labelled: it tells an
	// object someone else created under a child's name from the cache lagging behind.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Engine    engine.Engine
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// CAOverlap is how long a CA rotation trusts both CAs (DefaultCAOverlap if zero).
	CAOverlap time.Duration
	// ClusterDomain is the Services' DNS suffix in server certificates (certs.DefaultClusterDomain if empty).
	ClusterDomain string
	// DeletionRequeue is how soon to look again while children are still going away.
	DeletionRequeue time.Duration
	// NetworkPolicy, when set, gives every instance a NetworkPolicy admitting the operator's pods
	// it describes (framework/netpol); nil renders none, and removes those rendered before.
	NetworkPolicy *netpol.Operator
	// MaintenanceWindow is the platform's default window for instances that set none; nil: none.
	MaintenanceWindow *v1alpha1.MaintenanceWindow
	// Agent is the operator's own binary, to which every pod's agent is upgraded in place
	// (phase_agents.go); nil: agents are replaced only with their pods.
	Agent *fwagent.Release
	// AgentAddress, when set, is where a pod's agent listens (tests run agents on loopback).
	AgentAddress func(*corev1.Pod) string
	// MetricsTokenHash is the sha256 (hex) of the scrape token, given to every instance's agents
	// beside their certificate; empty: the agents answer no scrape.
	MetricsTokenHash string
	// Rollout paces operator-made restarts across the fleet (shared by every engine's
	// reconciler); nil: every instance restarts as soon as its window opens.
	Rollout *rollout.Gate
	// StorePolicy is the platform's policy on BackupStores, which a continuous archive's store
	// must pass as a backup's does.
	StorePolicy store.Policy

	// own remembers what this reconciler's last writes replaced (apply.OwnWrites).
	own apply.OwnWrites
}

// phase is one step of a reconcile. It returns done=true to stop the steps after it (the reason
// is recorded in the scope, and status is still written).
type phase func(ctx context.Context, s *scope) (done bool, err error)

// Reconcile drives one instance toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	defer resetPriority(&res)
	inst := &v1alpha1.ServiceInstance{}
	if err := r.Client.Get(ctx, req.NamespacedName, inst); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if inst.Spec.Engine != r.Engine.Name() {
		return ctrl.Result{}, nil
	}
	if r.own.Stale(req.NamespacedName, inst.ResourceVersion) {
		return apply.StaleRead()
	}
	orig := inst.DeepCopy()
	s := &scope{inst: inst}

	// One status write per reconcile, whatever the phases did, and none when nothing changed.
	defer func() {
		err := r.writeStatus(ctx, orig, s, retErr)
		switch {
		case apierrors.IsConflict(err) && retErr == nil:
			// The cache had not yet seen our last write: look again shortly, without an error.
			res = ctrl.Result{RequeueAfter: apply.LookAgain}
		case err != nil && retErr == nil:
			retErr = err
		}
	}()

	if !inst.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}

	for _, p := range []phase{
		r.ensureFinalizer,
		r.pause,
		r.markNamespace,
		r.resolveVersion,
		r.applyPlan,
		r.validate,
		r.certificates,
		r.resolveArchive,
		r.findOldestBase,
		r.render,
		r.upgradeAgents,
		r.holdRestarts,
		r.guardScaleDown,
		r.expandVolumes,
		r.applyChildren,
		r.reclaimPolicies,
		r.pruneChildren,
		r.observe,
	} {
		done, err := p(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		if done {
			break
		}
	}
	return ctrl.Result{RequeueAfter: spread(s.requeueAfter, inst.UID)}, nil
}

// ownerRef ties an object created outside Render (a lease, a generated Secret, a certificate) to
// the instance, so the garbage collector removes it with the instance. It is an owner, not the
// controller: pruning removes only controlled children Render no longer returns, never these.
func (r *Reconciler) ownerRef(inst *v1alpha1.ServiceInstance) metav1.OwnerReference {
	ref := *metav1.NewControllerRef(inst, v1alpha1.GroupVersion.WithKind("ServiceInstance"))
	ref.Controller = nil
	return ref
}

// fieldOwner is the server-side apply field manager: one per engine, so two engines never fight
// over a field and `kubectl get -o yaml --show-managed-fields` tells who set what.
func (r *Reconciler) fieldOwner() string { return "datafleet-" + r.Engine.Name() }

func (r *Reconciler) applier() *apply.Applier {
	return &apply.Applier{Client: r.Client, Scheme: r.Scheme, FieldOwner: r.fieldOwner()}
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// describeErr says what failed; a nil error stays nil.
func describeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
