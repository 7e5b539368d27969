package controllers

import (
	"context"
	"regexp"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// +kubebuilder:rbac:groups=datafleet.dev,resources=backupstores,verbs=get;list;watch
// +kubebuilder:rbac:groups=datafleet.dev,resources=backupstores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=datafleet.dev,resources=backups,verbs=get;list;watch;create

// StoreReconciler probes each BackupStore: it writes, reads back and deletes an object; a store
// with spec.importBackups is then listed for backups to import (imports.go).
type StoreReconciler struct {
	Client    client.Client
	APIReader client.Reader
	// Policy is the platform's say over which stores may be used (store.Policy).
	Policy store.Policy
	// Every is how often a Ready store is probed again.
	Every time.Duration

	// own remembers what this reconciler's last writes to each object replaced.
	own apply.OwnWrites
}

// Store reasons.
const (
	ReasonReachable    = "Reachable"
	ReasonProbeFailed  = "ProbeFailed"
	ReasonNotShareable = "NotShareable"
)

// Reconcile implements reconcile.Reconciler.
func (r *StoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	bs := &v1alpha1.BackupStore{}
	if err := r.Client.Get(ctx, req.NamespacedName, bs); err != nil {
		if apierrors.IsNotFound(err) {
			r.own.Gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.own.Stale(req.NamespacedName, bs.ResourceVersion) {
		return apply.StaleRead()
	}
	before := bs.DeepCopy()
	ok, reason, msg := r.probe(ctx, bs)
	bs.Status.ObservedGeneration = bs.Generation
	setReady(&bs.Status.Conditions, bs.Generation, ok, reason, msg)
	switch {
	case !bs.Spec.ImportBackups:
		meta.RemoveStatusCondition(&bs.Status.Conditions, ConditionImported)
		bs.Status.Imported = 0
	case ok:
		iok, ireason, imsg := r.importBackups(ctx, bs)
		setCondition(&bs.Status.Conditions, ConditionImported, bs.Generation, iok, ireason, imsg)
	}
	if err := writeStatus(ctx, r.Client, &r.own, before.ResourceVersion, before, bs, statusChanged(before.Status, bs.Status)); err != nil {
		return apply.QuietConflict(ctrl.Result{}, err)
	}
	every := r.Every
	if !ok {
		every = min(every, time.Minute)
	}
	return ctrl.Result{RequeueAfter: every}, nil
}

func (r *StoreReconciler) probe(ctx context.Context, bs *v1alpha1.BackupStore) (bool, string, string) {
	if !store.ShareableURL(bs.Spec.URL) {
		return false, ReasonNotShareable, "file:// and mem:// stores are seen by one process only, and backups run in Jobs of their own: use an object store (s3://, gs://, azblob://)"
	}
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, reason, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return false, reason, err.Error()
	}
	defer st.Close()
	if err := st.Probe(ctx, string(bs.UID)); err != nil {
		return false, ReasonProbeFailed, stableMessage(redact(err.Error()))
	}
	return true, ReasonReachable, "a probe object was written, read back and deleted"
}

// SetupWithManager registers the controller.
func (r *StoreReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.Every == 0 {
		r.Every = 10 * time.Minute
	}
	// Its own status writes do not make it probe again: the timer does.
	return ctrl.NewControllerManagedBy(mgr).Named("backupstore").WithOptions(opts).
		For(&v1alpha1.BackupStore{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).Complete(r)
}

// requestIDs are the parts of a provider's error that differ on every request.
var requestIDs = regexp.MustCompile(`(RequestID|HostID|request id|host id): [^,]*,? ?`)

// stableMessage drops request identifiers, so the same failure is the same condition and the
// status is not rewritten on every probe.
func stableMessage(s string) string { return requestIDs.ReplaceAllString(s, "") }
