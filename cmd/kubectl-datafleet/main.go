// Command kubectl-datafleet is a kubectl plugin (install it on PATH, then `kubectl datafleet`) with
// fleet views for platform teams and the day-2 actions of application teams.
//
//	kubectl datafleet versions [--engine E]   instances by engine and version, with days to sundown
//	kubectl datafleet rollout status          restarts the operator holds back, and paused instances
//	kubectl datafleet status [INSTANCE]       pods with roles, lag, connections, last backup, sundown
//	kubectl datafleet pause|resume INSTANCE   spec.paused
//	kubectl datafleet switchover INSTANCE [POD]
//	kubectl datafleet rotate BINDING
//	kubectl datafleet backup INSTANCE [--wait]
//	kubectl datafleet restore BACKUP --to NAME [--version V] [--time T] [--wait]
//	kubectl datafleet report INSTANCE [-o FILE]   a support bundle, redacted
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
	if len(args) > 0 && args[0] == completeCommand {
		return runComplete(ctx, args[1:], out)
	}
	var cmdName string
	switch {
	case len(args) >= 2 && args[0] == "rollout" && args[1] == "status":
		cmdName, args = "rollout status", args[2:]
	case len(args) >= 1 && args[0] != "rollout" && findCommand(args[0]) != nil:
		cmdName, args = args[0], args[1:]
	case len(args) >= 1 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h"):
		if c := findCommand(strings.Join(args[1:], " ")); c != nil {
			fmt.Fprint(out, c.helpText())
			return nil
		}
		fmt.Fprint(out, usageText())
		return nil
	}
	if cmdName == "" {
		fmt.Fprint(os.Stderr, usageText())
		return errors.New("unknown or missing command")
	}
	cmd := findCommand(cmdName)
	command := cmd.name
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	engineName := fs.String("engine", "", "only this engine (versions)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kctx := fs.String("context", "", "kubeconfig context")
	namespace := fs.String("n", "", "namespace (default: the context's)")
	allNamespaces := fs.Bool("A", false, "every namespace (status)")
	noFigures := fs.Bool("no-figures", false, "do not read lag and connections from the agents (status)")
	tokenSecret := fs.String("scrape-token-secret", "datafleet-system/datafleet-scrape-token", "the fleet's scrape token, NAMESPACE/NAME (status)")
	name := fs.String("name", "", "the Backup's or Restore's name (backup, restore)")
	method := fs.String("method", "", "Logical or Physical (backup; default the instance's)")
	to := fs.String("to", "", "the new instance to restore into (restore)")
	version := fs.String("version", "", "the new instance's version, for a blue/green move (restore)")
	at := fs.String("time", "", "restore to this time, RFC 3339 (restore of a physical backup)")
	waitFor := fs.Bool("wait", false, "follow the Backup or Restore to its end (backup, restore)")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long --wait waits")
	output := fs.String("o", "", "the bundle's file (report)")
	operatorNS := fs.String("operator-namespace", "datafleet-system", "where the operator runs (report)")
	clientPath := fs.String("client", "psql", "the client to open (connect)")
	// What follows "--" is the client's (connect).
	var clientArgs []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, clientArgs = args[:i], args[i+1:]
		if command != "connect" {
			return fmt.Errorf("%s takes no arguments after --", command)
		}
	}
	// Names may come before the flags, as kubectl takes them.
	var positional []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = append(positional, args[0]), args[1:]
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(out, cmd.helpText())
		return nil
	} else if err != nil {
		return fmt.Errorf("%s: %w (kubectl datafleet %s --help)", command, err, command)
	}
	positional = append(positional, fs.Args()...)
	if len(positional) < cmd.required || len(positional) > len(cmd.names) {
		fmt.Fprint(os.Stderr, cmd.helpText())
		return fmt.Errorf("%s takes %d to %d names, got %v", command, cmd.required, len(cmd.names), positional)
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
	ns := *namespace
	if ns == "" && !*allNamespaces {
		if ns, _, err = loader.Namespace(); err != nil {
			return err
		}
	}
	arg := func(i int) string {
		if i < len(positional) {
			return positional[i]
		}
		return ""
	}
	say := func(line string, err error) error {
		if err == nil {
			fmt.Fprintln(out, line)
		}
		return err
	}
	switch command {
	case "status":
		if arg(0) != "" && *allNamespaces {
			return errors.New("status: name an instance with -n, not -A")
		}
		if *allNamespaces {
			ns = ""
		}
		return runStatus(ctx, out, cfg, c, ns, arg(0), *noFigures, *tokenSecret)
	case "rollout status":
		rows, sum, err := Rollout(ctx, c)
		if err != nil {
			return err
		}
		return PrintRollout(out, rows, sum)
	case "pause", "resume":
		return say(Pause(ctx, c, ns, arg(0), command == "pause"))
	case "switchover":
		return say(Switchover(ctx, c, ns, arg(0), arg(1)))
	case "rotate":
		return say(Rotate(ctx, c, ns, arg(0)))
	case "backup":
		b, err := Backup(ctx, c, ns, arg(0), BackupOptions{Name: *name, Method: v1alpha1.BackupMethod(*method)}, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "backup %s/%s created\n", ns, b.Name)
		if !*waitFor {
			return nil
		}
		return followed(ctx, *timeout, func(ctx context.Context) error {
			if err := waitFinished(ctx, c, out, b, 2*time.Second); err != nil {
				return err
			}
			PrintBackup(out, b)
			return nil
		})
	case "connect":
		return runConnect(ctx, cfg, c, ns, arg(0), *clientPath, clientArgs, out)
	case "report":
		return runReport(ctx, out, cfg, c, ns, arg(0), *output, *operatorNS)
	case "restore":
		o := RestoreOptions{To: *to, Version: *version, Name: *name}
		if *at != "" {
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return fmt.Errorf("restore: --time %q is not an RFC 3339 time (2026-12-06T03:00:00Z): %w", *at, err)
			}
			o.Time = &t
		}
		rs, err := Restore(ctx, c, ns, arg(0), o)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "restore %s/%s of backup %s into %s created\n", ns, rs.Name, arg(0), o.To)
		if !*waitFor {
			return nil
		}
		return followed(ctx, *timeout, func(ctx context.Context) error { return waitFinished(ctx, c, out, rs, 2*time.Second) })
	}
	rows, err := Versions(ctx, c, *engineName, time.Now())
	if err != nil {
		return err
	}
	return PrintVersions(out, rows)
}

// followed runs follow with a deadline of timeout.
func followed(ctx context.Context, timeout time.Duration, follow func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return follow(ctx)
}
