// Package operator assembles a manager: the scheme, a cache that holds only what Datafleet owns,
// and one controller per enabled engine. cmd/manager and the controller tests both use it, so the
// tests exercise the wiring that ships.
package operator

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/fleet"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/netpol"
	"github.com/datafleet-dev/datafleet/framework/rollout"
)

// CacheOptions restricts the cache of every child kind (and Pods and PVCs, which the StatefulSet
// controller makes for us) to objects labelled as managed by Datafleet, so memory grows with the
// number of instances, not with the size of the cluster, and keeps of a pod only what the
// operator reads (trimPods).
func CacheOptions(engines []engine.Engine) cache.Options {
	sel := labels.SelectorFromSet(labels.Set{names.ManagedByLabel: names.ManagedBy})
	by := map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   {Label: sel, Transform: trimPods()},
		&corev1.PersistentVolumeClaim{}: {Label: sel},
		&corev1.Secret{}:                {Label: sel},
		&corev1.ConfigMap{}:             {Label: sel},
		&corev1.Service{}:               {Label: sel},
		&appsv1.StatefulSet{}:           {Label: sel},
		&batchv1.Job{}:                  {Label: sel},
	}
	for _, e := range engines {
		types := instance.ChildTypes(e)
		if w, ok := e.(engine.Watcher); ok {
			for _, watch := range w.Watches() {
				types = append(types, watch.Type)
			}
		}
		for _, t := range types {
			if !hasType(by, t) {
				by[t] = cache.ByObject{Label: sel}
			}
		}
	}
	// Nothing reads the managed fields, which are a quarter of what the cache held at 1,000
	// instances (docs/scale.md).
	return cache.Options{ByObject: by, DefaultTransform: cache.TransformStripManagedFields()}
}

func hasType(by map[client.Object]cache.ByObject, t client.Object) bool {
	for k := range by {
		if fmt.Sprintf("%T", k) == fmt.Sprintf("%T", t) {
			return true
		}
	}
	return false
}

// Options configure the controllers.
type Options struct {
	// MaxConcurrentReconciles per engine controller.
	MaxConcurrentReconciles int
	// Known lists every engine compiled in, for the unknown-engine message.
	Known []string
	// AgentImage is the operator's own image, for engines whose pods run the instance agent.
	AgentImage string
	// StoreProbeEvery is how often BackupStores are probed (default 10 minutes).
	StoreProbeEvery time.Duration
	// RunRetry is how long a waiting Backup or Restore waits before it looks again (30 s and
	// 15 s if zero); what it waits for wakes it sooner. Tests lengthen it to show the wake.
	RunRetry time.Duration
	// StorePolicy says which BackupStores the operator may use: ambient credentials, endpoints.
	StorePolicy store.Policy
	// NetworkPolicy describes the operator's pods to every instance's NetworkPolicy; nil renders none.
	NetworkPolicy *netpol.Operator
	// CAOverlap is how long a CA rotation trusts both CAs (instance.DefaultCAOverlap if zero).
	CAOverlap time.Duration
	// MaintenanceWindow is the platform's default window for instances that set none; nil: none.
	MaintenanceWindow *v1alpha1.MaintenanceWindow
	// Clock is the instance controllers' clock (the real one if nil): tests move it.
	Clock clock.PassiveClock
	// Rollout paces operator-made restarts across every engine's instances; nil: unpaced.
	Rollout *rollout.Policy
	// Agent is the operator's own binary, to which the agents are upgraded in place; nil:
	// agents are replaced only with their pods.
	Agent *fwagent.Release
	// AgentAddress, when set, is where a pod's agent listens (tests run agents on loopback).
	AgentAddress func(*corev1.Pod) string
	// MetricsTokenHash is the sha256 (hex) of the scrape token (ScrapeToken) the agents' metrics
	// answer; empty: they answer no scrape.
	MetricsTokenHash string
}

// Setup registers the field indexes, one controller per engine, the binding controller, the
// unclaimed-engine controller and the fleet's metrics.
func Setup(ctx context.Context, mgr ctrl.Manager, engines []engine.Engine, opts Options) error {
	if err := instance.IndexEngine(ctx, mgr); err != nil {
		return err
	}
	if err := binding.IndexInstance(ctx, mgr); err != nil {
		return err
	}
	enabled := make([]string, 0, len(engines))
	var gate *rollout.Gate
	if opts.Rollout != nil {
		gate = rollout.NewGate(*opts.Rollout)
	}
	for _, e := range engines {
		r := &instance.Reconciler{
			AgentImage:    opts.AgentImage,
			Client:        mgr.GetClient(),
			APIReader:     mgr.GetAPIReader(),
			Scheme:        mgr.GetScheme(),
			Engine:        e,
			Recorder:      mgr.GetEventRecorder(instance.ControllerName(e.Name())),
			NetworkPolicy: opts.NetworkPolicy,
			CAOverlap:     opts.CAOverlap,
			Clock:         opts.Clock,

			MaintenanceWindow: opts.MaintenanceWindow,
			Rollout:           gate,
			Agent:             opts.Agent,
			AgentAddress:      opts.AgentAddress,
			MetricsTokenHash:  opts.MetricsTokenHash,
			StorePolicy:       opts.StorePolicy,
		}
		if err := r.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", e.Name(), err)
		}
		enabled = append(enabled, e.Name())
	}
	br := &binding.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Engines: engine.ByName(engines),
		Recorder: mgr.GetEventRecorder(binding.ControllerName)}
	if err := br.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}); err != nil {
		return fmt.Errorf("setting up the binding controller: %w", err)
	}
	if err := setupBackups(mgr, engines, opts); err != nil {
		return err
	}
	// The leader alone serves the fleet's figures (a RunnableFunc waits for the lease), so that
	// the replicas of one operator do not report every instance twice.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		unregister := fleet.Register(mgr.GetClient())
		<-ctx.Done()
		unregister()
		return nil
	})); err != nil {
		return err
	}
	known := opts.Known
	if len(known) == 0 {
		known = enabled
	}
	return (&instance.UnclaimedReconciler{Client: mgr.GetClient(), Enabled: enabled, Known: known}).SetupWithManager(mgr)
}

// setupBackups registers the backup kinds' controllers, which serve every engine.
func setupBackups(mgr ctrl.Manager, engines []engine.Engine, opts Options) error {
	byName := engine.ByName(engines)
	copts := controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}
	for _, r := range []interface {
		SetupWithManager(ctrl.Manager, controller.Options) error
	}{
		&controllers.StoreReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Every: opts.StoreProbeEvery, Policy: opts.StorePolicy},
		&controllers.BackupReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Engines: byName, Image: opts.AgentImage,
			Recorder: mgr.GetEventRecorder("backup"), Policy: opts.StorePolicy, Retry: opts.RunRetry},
		&controllers.RestoreReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Engines: byName, Image: opts.AgentImage,
			Recorder: mgr.GetEventRecorder("restore"), Policy: opts.StorePolicy, Retry: opts.RunRetry},
		&controllers.PlanReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("backupplan"), Engines: byName},
	} {
		if err := r.SetupWithManager(mgr, copts); err != nil {
			return fmt.Errorf("setting up the backup controllers: %w", err)
		}
	}
	return nil
}
