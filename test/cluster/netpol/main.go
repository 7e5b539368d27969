// Command netpol enforces NetworkPolicies on the local cluster's node (ingress rules), with iptables.
//
// It runs on the node as a host process (test/cluster/cluster.sh starts it), watches policies,
// pods and namespaces, and keeps one filter-table chain (Chain) that FORWARD jumps to first: pod
// to pod traffic on the node's bridge passes FORWARD, so the chain decides who may open a
// connection to a pod a policy isolates (rules.go). Every change rewrites the chain in one
// iptables-restore transaction, so there is no moment without rules.
//
// Not kube-network-policies or kube-router: the first queues packets with nftables' queue
// statement, which this machine's kernel lacks (CONFIG_NFT_QUEUE), and the only kube-router
// version served here has reported security flaws. Egress rules are not enforced (docs/local-cluster.md).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// resync is how often the jump from FORWARD is checked even when nothing changed (another
// program rewriting FORWARD must not switch policies off for long).
const resync = 10 * time.Second

func main() {
	flag.Parse()
	ctrl.SetLogger(zap.New())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := ctrl.GetConfig() // --kubeconfig is controller-runtime's flag
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return err
	}
	e := &enforcer{c: mgr.GetClient()}
	// Every event asks for the same single sync: the work queue folds bursts into one.
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "sync"}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("netpol").
		Watches(&networkingv1.NetworkPolicy{}, one).
		Watches(&corev1.Pod{}, one).
		Watches(&corev1.Namespace{}, one).
		Complete(e)
	if err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

type enforcer struct {
	c       client.Client
	applied [sha256.Size]byte
	warned  map[string]bool
}

func (e *enforcer) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var w World
	var pols networkingv1.NetworkPolicyList
	var pods corev1.PodList
	var nss corev1.NamespaceList
	for _, l := range []client.ObjectList{&pols, &pods, &nss} {
		if err := e.c.List(ctx, l); err != nil {
			return reconcile.Result{}, err
		}
	}
	w.Policies, w.Pods, w.Namespaces = pols.Items, pods.Items, nss.Items
	rules, warnings := Render(w)
	log := ctrl.LoggerFrom(ctx)
	if e.warned == nil {
		e.warned = map[string]bool{}
	}
	for _, msg := range warnings {
		if !e.warned[msg] {
			e.warned[msg] = true
			log.Info("warning: " + msg)
		}
	}
	if sum := sha256.Sum256([]byte(rules)); sum != e.applied {
		if err := iptables(ctx, bytes.NewBufferString(rules), "iptables-restore", "--noflush", "--wait"); err != nil {
			return reconcile.Result{}, err
		}
		e.applied = sum
		log.Info("rules applied", "policies", len(w.Policies), "bytes", len(rules))
	}
	if err := ensureJump(ctx); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: resync}, nil
}

// ensureJump puts FORWARD's jump to the chain first, unless it is there already.
func ensureJump(ctx context.Context) error {
	spec := []string{"FORWARD", "-m", "comment", "--comment", "datafleet local-cluster NetworkPolicies", "-j", Chain}
	if iptables(ctx, nil, "iptables", append([]string{"--wait", "-C"}, spec...)...) == nil {
		return nil
	}
	return iptables(ctx, nil, "iptables", append([]string{"--wait", "-I", spec[0], "1"}, spec[1:]...)...)
}

func iptables(ctx context.Context, stdin *bytes.Buffer, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && len(out) > 0 {
			return fmt.Errorf("%s: %s", name, bytes.TrimSpace(out))
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
