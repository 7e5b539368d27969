// Command kubectl-datafleet is a kubectl plugin (install it on PATH, then `kubectl datafleet`) with
// fleet views for platform teams.
//
//	kubectl datafleet versions [--engine E]   instances by engine and version, with days to sundown
//	kubectl datafleet rollout status          restarts the operator holds back, and paused instances
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const usage = `usage: kubectl datafleet versions [--engine ENGINE] [--kubeconfig FILE] [--context NAME]
       kubectl datafleet rollout status [--kubeconfig FILE] [--context NAME]

versions         lists every ServiceInstance by engine and version, with its support state and the
                 days left before its version's sundown (from the engine's VersionCatalog)
rollout status   lists the instances whose restart the operator holds back (a new agent waiting
                 for the spec, a maintenance window or the fleet's pace: the message says which)
                 and the paused ones
`

func main() {
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
	default:
		fmt.Fprint(os.Stderr, usage)
		return errors.New("unknown or missing command")
	}
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	engineName := fs.String("engine", "", "only this engine (versions)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kctx := fs.String("context", "", "kubeconfig context")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kctx}).ClientConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return err
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
