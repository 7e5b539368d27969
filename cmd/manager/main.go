// Command manager is Datafleet's operator: one binary that runs a separate controller per engine.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"strings"
	"time"
	_ "time/tzdata" // BackupPlan and maintenance window time zones: the image has no zoneinfo

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/maintenance"
	"github.com/datafleet-dev/datafleet/framework/netpol"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/rollout"
	"github.com/datafleet-dev/datafleet/framework/webhook"
)

type options struct {
	engines                 string
	maxConcurrentReconciles int
	caOverlap               time.Duration
	maintenanceWindow       string
	rollout                 rollout.Policy
	metricsAddr             string
	probeAddr               string
	pprofAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	agentImage              string
	webhook                 webhookOptions
	stores                  store.Policy
	storeEndpoints          string
	storeImportNamespaces   string
	operatorPodLabels       string
	metricsSecure           bool
	scraper                 netpol.Scraper
	scraperLabels           string
	scrapeTokenSecret       string
}

// webhookOptions: the validating webhook runs when configuration names the chart's
// ValidatingWebhookConfiguration.
type webhookOptions struct {
	configuration string
	service       string
	port          int
	certDir       string
	selfSigned    bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(backup.ExitCode(err))
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "agent" {
		return runAgent(args[1:])
	}
	if len(args) > 0 && args[0] == fwagent.VersionCommand {
		return agentruntime.PrintVersion(os.Stdout)
	}
	if len(args) > 0 && args[0] == "apply-crds" {
		return runApplyCRDs(args[1:])
	}
	if len(args) > 0 && args[0] == "install-agent" {
		return installAgent(args[1:])
	}
	if len(args) > 0 && args[0] == "segments" {
		// An engine's archiver, in the pod: one segment in or out of the store (continuous archiving).
		ctx, cancel := agentruntime.SignalContext()
		defer cancel()
		return backup.SegmentsMain(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "backup" {
		// The backup and restore Jobs: no API access, the result in the termination message.
		ctx, cancel := agentruntime.SignalContext()
		defer cancel()
		return job.Main(ctx, args[1:], engine.ByName(compiledEngines()))
	}
	registry := engine.NewRegistry(compiledEngines()...)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.engines, "engines", "", fmt.Sprintf(
		"comma-separated engines to run, each with its own controller (default: all compiled in: %s)", describeEngines(registry.Names())))
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "workers per engine controller")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"serve metrics over HTTPS to bearer tokens the API server authorises to GET /metrics (false: plain HTTP, no authentication)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "",
		"address of Go's profiling endpoints (/debug/pprof/), unauthenticated: bind it to 127.0.0.1 and reach it with kubectl port-forward; empty: none")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader, so that only one replica of the manager reconciles")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the manager's own)")
	fs.StringVar(&o.agentImage, "agent-image", os.Getenv("OPERATOR_IMAGE"),
		"the operator's own image, from which engine pods copy the instance agent (default: $OPERATOR_IMAGE)")
	fs.StringVar(&o.webhook.configuration, "webhook-configuration", "",
		"name of the ValidatingWebhookConfiguration to serve (empty: no webhook, as when running outside the cluster)")
	fs.StringVar(&o.webhook.service, "webhook-service", "", "name of the webhook's Service in the manager's namespace ($POD_NAMESPACE)")
	fs.IntVar(&o.webhook.port, "webhook-port", 9443, "port the webhook server listens on")
	fs.StringVar(&o.webhook.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of the webhook's tls.crt and tls.key")
	fs.BoolVar(&o.stores.AllowAmbientCredentials, "store-allow-ambient-credentials", false,
		"let BackupStores without a credentials Secret (and azblob://) use the operator's own cloud identity")
	fs.StringVar(&o.storeEndpoints, "store-allowed-endpoints", "",
		"comma-separated host:port patterns (path.Match) of the custom endpoints BackupStore URLs may name; none when empty")
	fs.StringVar(&o.storeImportNamespaces, "store-import-namespaces", "",
		"comma-separated namespaces whose BackupStores may import the backups they hold as Backups (spec.importBackups); none when empty")
	fs.BoolVar(&o.webhook.selfSigned, "webhook-self-signed", true,
		"issue the webhook's certificate from the operator's own CA and inject it into the configuration (false: cert-manager provides both)")
	fs.StringVar(&o.operatorPodLabels, "network-policy-operator-labels", "",
		"labels of the operator's pods (k=v,...), in $POD_NAMESPACE: every instance gets a NetworkPolicy admitting them; empty: no NetworkPolicies")
	fs.StringVar(&o.scraper.Namespace, "network-policy-scraper-namespace", "",
		"namespace of the Prometheus that scrapes the agents' metrics: the instances' NetworkPolicies admit it on the metrics port; empty: nobody")
	fs.StringVar(&o.scraperLabels, "network-policy-scraper-labels", "",
		"labels (k=v,...) of the scraper's pods in --network-policy-scraper-namespace; empty: every pod of that namespace")
	fs.StringVar(&o.scrapeTokenSecret, "metrics-scrape-token-secret", "",
		"Secret in $POD_NAMESPACE holding the token (key \"token\") the agents' metrics answer, created with a random one if absent; empty: the agents answer no scrape")
	fs.StringVar(&o.maintenanceWindow, "maintenance-window", "",
		`the default maintenance window, as spec.maintenanceWindow in JSON ({"days":["Sat"],"startTime":"02:00","duration":"2h","timeZone":"UTC"}); empty: none`)
	fs.IntVar(&o.rollout.Canaries, "rollout-canaries", 1,
		"instances that take an operator-made restart (a new agent) one at a time before the others")
	fs.IntVar(&o.rollout.MaxConcurrent, "rollout-max-concurrent", 5, "instances taking an operator-made restart at once, after the canaries")
	fs.DurationVar(&o.rollout.ReadyTimeout, "rollout-ready-timeout", 15*time.Minute,
		"an instance not Ready again this long after its operator-made restart began stops the others from starting (0: no limit)")
	fs.DurationVar(&o.caOverlap, "ca-rotation-overlap", instance.DefaultCAOverlap,
		"how long a rotation of an instance's CA has clients trust both CAs: half before the new one signs, half after")
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
	if o.rollout.MaxConcurrent < 1 || o.rollout.Canaries < 0 || o.rollout.ReadyTimeout < 0 {
		return fmt.Errorf("--rollout-max-concurrent must be at least 1 and --rollout-canaries and --rollout-ready-timeout not negative, got %d, %d, %s",
			o.rollout.MaxConcurrent, o.rollout.Canaries, o.rollout.ReadyTimeout)
	}
	for _, e := range strings.Split(o.storeEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			if _, err := path.Match(e, ""); err != nil {
				return fmt.Errorf("--store-allowed-endpoints: %q: %w", e, err)
			}
			o.stores.Endpoints = append(o.stores.Endpoints, e)
		}
	}
	for _, ns := range strings.Split(o.storeImportNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.stores.ImportNamespaces = append(o.stores.ImportNamespaces, ns)
		}
	}
	netpolOperator, err := networkPolicyOperator(o.operatorPodLabels, os.Getenv("POD_NAMESPACE"))
	if err != nil {
		return err
	}
	if o.scraper.Namespace != "" && netpolOperator != nil {
		if o.scraper.Labels, err = labels.ConvertSelectorToLabelsMap(o.scraperLabels); err != nil {
			return fmt.Errorf("--network-policy-scraper-labels: %w", err)
		}
		netpolOperator.Scraper = &o.scraper
	}
	window, err := maintenanceWindow(o.maintenanceWindow)
	if err != nil {
		return fmt.Errorf("--maintenance-window: %w", err)
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
	if limit := limitMemory(memoryLimitFiles); limit > 0 {
		log.Info("the garbage collector aims under the container's memory limit", "bytes", limit)
	}
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
	ctx := ctrl.SetupSignalHandler()
	var certs *webhook.Certs
	if o.webhook.configuration != "" && o.webhook.selfSigned {
		if certs, err = webhookCerts(cfg, o.webhook); err != nil {
			return err
		}
		// The webhook server reads its certificate when it starts.
		if err := certs.WaitReady(ctx); err != nil {
			return err
		}
	}
	var scrapeTokenHash string
	if o.scrapeTokenSecret != "" {
		if scrapeTokenHash, err = scrapeToken(ctx, cfg, o.scrapeTokenSecret); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Port: o.webhook.port, CertDir: o.webhook.certDir}),
		Scheme:                  engine.NewScheme(),
		Cache:                   operator.CacheOptions(engines),
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The manager exits right after losing the lease, so a new leader never overlaps it.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	// The agents are upgraded in place to this very binary (framework/instance/phase_agents.go).
	release, err := fwagent.SelfRelease()
	if err != nil {
		return fmt.Errorf("reading the operator's own binary, which the agents are upgraded to: %w", err)
	}
	if err := operator.Setup(ctx, mgr, engines, operator.Options{
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
		Known:                   registry.Names(),
		AgentImage:              o.agentImage,
		StorePolicy:             o.stores,
		NetworkPolicy:           netpolOperator,
		CAOverlap:               o.caOverlap,
		MaintenanceWindow:       window,
		Rollout:                 &o.rollout,
		Agent:                   release,
		MetricsTokenHash:        scrapeTokenHash,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	ready := healthz.Ping
	if o.webhook.configuration != "" {
		if err := webhook.Setup(mgr, engines, o.stores); err != nil {
			return err
		}
		if certs != nil {
			if err := mgr.Add(certs); err != nil {
				return err
			}
		}
		// Not ready until the webhook serves: the Service only routes to replicas that answer.
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		return err
	}
	names := make([]string, 0, len(engines))
	for _, e := range engines {
		names = append(names, e.Name())
	}
	log.Info("starting manager", "engines", names, "workersPerEngine", o.maxConcurrentReconciles)
	return mgr.Start(ctx)
}

// webhookCerts is the webhook's self-managed certificate, kept with a client of its own: it is
// needed before the manager (and its cache) starts.
func webhookCerts(cfg *rest.Config, o webhookOptions) (*webhook.Certs, error) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" || o.service == "" {
		return nil, errors.New("a self-signed webhook certificate needs --webhook-service and $POD_NAMESPACE")
	}
	c, err := client.New(cfg, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return nil, err
	}
	return &webhook.Certs{Client: c, Namespace: ns, Service: o.service, Configuration: o.configuration, Dir: o.certDir}, nil
}

// scrapeToken is the hash of the scrape token in the Secret name of the operator's namespace
// (operator.ScrapeToken), read with a client of its own before the manager starts.
func scrapeToken(ctx context.Context, cfg *rest.Config, name string) (string, error) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		return "", errors.New("--metrics-scrape-token-secret needs $POD_NAMESPACE, the operator's namespace")
	}
	c, err := client.New(cfg, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var owner *metav1.OwnerReference
	if sa := os.Getenv("SERVICE_ACCOUNT_NAME"); sa != "" { // from the chart: the Secret goes with it
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return "", err
		}
		if owner, err = managerOwner(ctx, cs, ns, sa); err != nil {
			return "", err
		}
	}
	return operator.ScrapeToken(ctx, c, ns, name, owner)
}

// networkPolicyOperator describes the operator's pods to the instances' NetworkPolicies, or
// returns nil when the flag is empty (policies off).
func networkPolicyOperator(podLabels, namespace string) (*netpol.Operator, error) {
	if podLabels == "" {
		return nil, nil
	}
	l, err := labels.ConvertSelectorToLabelsMap(podLabels)
	if err != nil {
		return nil, fmt.Errorf("--network-policy-operator-labels: %w", err)
	}
	if namespace == "" {
		return nil, errors.New("--network-policy-operator-labels needs $POD_NAMESPACE, the operator's namespace")
	}
	return &netpol.Operator{Namespace: namespace, Labels: l}, nil
}

// metricsOptions serves metrics over HTTPS (a self-signed certificate controller-runtime makes)
// behind the API server's authentication and authorisation, unless told not to.
func metricsOptions(o options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsSecure {
		m.SecureServing, m.FilterProvider = true, operator.MetricsAuth
	}
	return m
}

// maintenanceWindow reads --maintenance-window: the schema of spec.maintenanceWindow, in JSON,
// checked as the webhook checks an instance's (nil when empty).
func maintenanceWindow(flagValue string) (*v1alpha1.MaintenanceWindow, error) {
	if strings.TrimSpace(flagValue) == "" {
		return nil, nil
	}
	var w v1alpha1.MaintenanceWindow
	dec := json.NewDecoder(strings.NewReader(flagValue))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	if _, err := maintenance.Parse(w); err != nil {
		return nil, err
	}
	return &w, nil
}
