// Command manager is Datafleet's operator: one binary that runs a separate controller per engine.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	_ "time/tzdata" // BackupPlan time zones: the image has no zoneinfo

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/operator"
)

type options struct {
	engines                 string
	maxConcurrentReconciles int
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	agentImage              string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "agent" {
		return runAgent(args[1:])
	}
	if len(args) > 0 && args[0] == "install-agent" {
		return installAgent(args[1:])
	}
	if len(args) > 0 && args[0] == "backup" {
		// The backup and restore Jobs: no API access, the result in the termination message.
		ctx, cancel := agent.SignalContext()
		defer cancel()
		byName := map[string]engine.Engine{}
		for _, e := range compiledEngines() {
			byName[e.Name()] = e
		}
		return job.Main(ctx, args[1:], byName)
	}
	registry := engine.NewRegistry(compiledEngines()...)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.engines, "engines", "", fmt.Sprintf(
		"comma-separated engines to run, each with its own controller (default: all compiled in: %s)", describeEngines(registry.Names())))
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "workers per engine controller")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader, so that only one replica of the manager reconciles")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the manager's own)")
	fs.StringVar(&o.agentImage, "agent-image", os.Getenv("OPERATOR_IMAGE"),
		"the operator's own image, from which engine pods copy the instance agent (default: $OPERATOR_IMAGE)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.maxConcurrentReconciles < 1 {
		return fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", o.maxConcurrentReconciles)
	}
	var wanted []string
	if o.engines != "" {
		wanted = strings.Split(o.engines, ",")
	}
	engines, err := registry.Select(wanted)
	if err != nil {
		return fmt.Errorf("--engines: %w", err)
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding a kubeconfig: %w", err)
	}
	if o.leaderElect {
		// The chart sets SERVICE_ACCOUNT_NAME through the downward API.
		if err := ownLeaseBySA(cfg, o.leaderElectionNamespace, os.Getenv("SERVICE_ACCOUNT_NAME")); err != nil {
			log.Error(err, "the leader-election Lease will not be removed with the chart")
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  operator.NewScheme(),
		Cache:                   operator.CacheOptions(engines),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The manager exits right after losing the lease, so a new leader never overlaps it.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := operator.Setup(ctx, mgr, engines, operator.Options{
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
		Known:                   registry.Names(),
		AgentImage:              o.agentImage,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	names := make([]string, 0, len(engines))
	for _, e := range engines {
		names = append(names, e.Name())
	}
	log.Info("starting manager", "engines", names, "workersPerEngine", o.maxConcurrentReconciles)
	return mgr.Start(ctx)
}
