// Command kubectl-datafleet is a kubectl plugin (install it on PATH, then `kubectl datafleet`) with
// fleet views for platform teams.
//
//	kubectl datafleet versions [--engine E]   instances by engine and version, with days to sundown
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

versions   lists every ServiceInstance by engine and version, with its support state and the days
           left before its version's sundown (from the engine's VersionCatalog)
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl-datafleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "versions" {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("unknown or missing command")
	}
	fs := flag.NewFlagSet("versions", flag.ContinueOnError)
	engineName := fs.String("engine", "", "only this engine")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kctx := fs.String("context", "", "kubeconfig context")
	if err := fs.Parse(args[1:]); err != nil {
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
	rows, err := Versions(ctx, c, *engineName, time.Now())
	if err != nil {
		return err
	}
	return PrintVersions(out, rows)
}
