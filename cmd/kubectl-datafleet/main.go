// Command kubectl-datafleet is a kubectl plugin (install it on PATH, then `kubectl datafleet`) with
// fleet views for platform teams.
//
//	kubectl datafleet versions [--engine E]   instances by engine and version, with days to sundown
//	kubectl datafleet rollout status          restarts the operator holds back, and paused instances
//	kubectl datafleet status [INSTANCE]       pods with roles, lag, connections, last backup, sundown
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const usage = `usage: kubectl datafleet versions [--engine ENGINE] [--kubeconfig FILE] [--context NAME]
       kubectl datafleet rollout status [--kubeconfig FILE] [--context NAME]
       kubectl datafleet status [INSTANCE] [-n NAMESPACE | -A] [--no-figures]
                                [--scrape-token-secret NAMESPACE/NAME] [--kubeconfig FILE] [--context NAME]

versions         lists every ServiceInstance by engine and version, with its support state and the
                 days left before its version's sundown (from the engine's VersionCatalog)
rollout status   lists the instances whose restart the operator holds back (a new agent waiting
                 for the spec, a maintenance window or the fleet's pace: the message says which)
                 and the paused ones
status           per instance (the one named, or every one of the namespace): phase, ready pods,
                 primary, last backup's age, days to its version's sundown, pending restarts; per
                 pod its role and state, and from its agent the replication lag and connections
                 (read through a port-forward with the fleet's scrape token: needs get on that
                 Secret, default datafleet-system/datafleet-scrape-token, and pods/portforward;
                 --no-figures skips them)
`

func main() {
	// client-go reports a port-forward's closed streams through klog; they are not the user's
	// concern (a failed scrape is reported in the output).
	klog.SetLogger(logr.Discard())
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl-datafleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var command string
	switch {
	case len(args) >= 1 && args[0] == "versions":
		command, args = "versions", args[1:]
	case len(args) >= 2 && args[0] == "rollout" && args[1] == "status":
		command, args = "rollout status", args[2:]
	case len(args) >= 1 && args[0] == "status":
		command, args = "status", args[1:]
	default:
		fmt.Fprint(os.Stderr, usage)
		return errors.New("unknown or missing command")
	}
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	engineName := fs.String("engine", "", "only this engine (versions)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kctx := fs.String("context", "", "kubeconfig context")
	namespace := fs.String("n", "", "namespace (status; default: the context's)")
	allNamespaces := fs.Bool("A", false, "every namespace (status)")
	noFigures := fs.Bool("no-figures", false, "do not read lag and connections from the agents (status)")
	tokenSecret := fs.String("scrape-token-secret", "datafleet-system/datafleet-scrape-token", "the fleet's scrape token, NAMESPACE/NAME (status)")
	// The instance's name may come before the flags, as kubectl takes it.
	var positional []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = append(positional, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	positional = append(positional, fs.Args()...)
	if len(positional) > 1 || (len(positional) == 1 && command != "status") {
		return fmt.Errorf("%s: unexpected arguments %v", command, positional)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kctx})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return err
	}
	if command == "status" {
		ns := *namespace
		if ns == "" && !*allNamespaces {
			if ns, _, err = loader.Namespace(); err != nil {
				return err
			}
		}
		var name string
		if len(positional) == 1 {
			name = positional[0]
			if *allNamespaces {
				return errors.New("status: name an instance with -n, not -A")
			}
		}
		return runStatus(ctx, out, cfg, c, ns, name, *noFigures, *tokenSecret)
	}
	if command == "rollout status" {
		rows, sum, err := Rollout(ctx, c)
		if err != nil {
			return err
		}
		return PrintRollout(out, rows, sum)
	}
	rows, err := Versions(ctx, c, *engineName, time.Now())
	if err != nil {
		return err
	}
	return PrintVersions(out, rows)
}
