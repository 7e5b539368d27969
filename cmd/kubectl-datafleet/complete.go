package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// completeCommand is what kubectl's plugin completion runs (kubectl 1.26+ calls an executable
// kubectl_complete-datafleet with the words after "datafleet" and the word being completed; the
// one in this directory runs `kubectl-datafleet __complete "$@"`). The answer is cobra's: one
// candidate a line, then ":4" (no file completion).
const completeCommand = "__complete"

// valueFlags take a value (the next word, or after "=").
var valueFlags = []string{"-n", "--kubeconfig", "--context", "--engine", "--scrape-token-secret", "--name", "--method", "--to", "--version", "--time", "--timeout"}

func runComplete(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		args = []string{""}
	}
	words, partial := args[:len(args)-1], args[len(args)-1]
	// The names come from the cluster the words point at; without one, only the static parts.
	var c client.Client
	ns := flagValue(words, "-n")
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = flagValue(words, "--kubeconfig")
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: flagValue(words, "--context")})
	if cfg, err := loader.ClientConfig(); err == nil {
		cfg.Timeout = 5 * time.Second
		c, _ = client.New(cfg, client.Options{Scheme: engine.NewScheme()})
		if ns == "" {
			ns, _, _ = loader.Namespace()
		}
	}
	for _, candidate := range completions(ctx, c, ns, words, partial) {
		fmt.Fprintln(out, candidate)
	}
	fmt.Fprintln(out, ":4")
	return nil
}

// completions are the candidates for partial after words: commands, then flags, flag values and
// the names each command takes, read from the namespace ns (nothing from the cluster if c is nil).
func completions(ctx context.Context, c client.Client, ns string, words []string, partial string) []string {
	// Flags before the command (kubectl datafleet -n shop pause ...) are the command's too.
	for len(words) > 0 && strings.HasPrefix(words[0], "-") {
		if slices.Contains(valueFlags, words[0]) && len(words) > 1 {
			words = words[1:]
		}
		words = words[1:]
	}
	var candidates []string
	switch {
	case len(words) == 0:
		candidates = []string{"help"}
		for _, cmd := range commandTable {
			candidates = append(candidates, strings.Fields(cmd.name)[0])
		}
	case words[0] == "help":
		if len(words) == 1 {
			for _, cmd := range commandTable {
				candidates = append(candidates, strings.Fields(cmd.name)[0])
			}
		}
	case words[0] == "rollout":
		if len(words) == 1 {
			candidates = []string{"status"}
		} else {
			candidates = commandCompletions(ctx, c, ns, findCommand("rollout status"), words[2:], partial)
		}
	case findCommand(words[0]) != nil:
		candidates = commandCompletions(ctx, c, ns, findCommand(words[0]), words[1:], partial)
	}
	var out []string
	for _, candidate := range candidates {
		if strings.HasPrefix(candidate, partial) && !slices.Contains(out, candidate) {
			out = append(out, candidate)
		}
	}
	slices.Sort(out)
	return out
}

// commandCompletions completes partial after the command's words.
func commandCompletions(ctx context.Context, c client.Client, ns string, cmd *command, words []string, partial string) []string {
	if len(words) > 0 && slices.Contains(valueFlags, words[len(words)-1]) {
		switch words[len(words)-1] {
		case "-n":
			return listNames(ctx, c, "", &corev1.NamespaceList{})
		case "--method":
			return []string{string(v1alpha1.BackupLogical), string(v1alpha1.BackupPhysical)}
		}
		return nil
	}
	if strings.HasPrefix(partial, "-") {
		return append(append([]string{"--help"}, commonFlags...), cmd.flags...)
	}
	var positional []string
	for i := 0; i < len(words); i++ {
		switch {
		case slices.Contains(valueFlags, words[i]):
			i++ // its value
		case !strings.HasPrefix(words[i], "-"):
			positional = append(positional, words[i])
		}
	}
	if len(positional) >= len(cmd.names) {
		return nil
	}
	switch cmd.names[len(positional)] {
	case instanceName:
		return listNames(ctx, c, ns, &v1alpha1.ServiceInstanceList{})
	case bindingName:
		return listNames(ctx, c, ns, &v1alpha1.ServiceBindingList{})
	case backupName:
		return listNames(ctx, c, ns, &v1alpha1.BackupList{})
	case podName:
		inst := &v1alpha1.ServiceInstance{}
		if c == nil || c.Get(ctx, client.ObjectKey{Namespace: ns, Name: positional[0]}, inst) != nil {
			return nil
		}
		return listNames(ctx, c, ns, &corev1.PodList{}, client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name)))
	}
	return nil
}

// listNames lists the objects' names (none if c is nil or the list fails: completion stays quiet).
func listNames(ctx context.Context, c client.Client, ns string, list client.ObjectList, opts ...client.ListOption) []string {
	if c == nil {
		return nil
	}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, list, opts...); err != nil {
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range items {
		if a, err := meta.Accessor(o); err == nil {
			out = append(out, a.GetName())
		}
	}
	return out
}

// flagValue is the value words give the flag ("-n x" or "-n=x"; the last, as the flag package
// takes it), or "".
func flagValue(words []string, flag string) string {
	value := ""
	for i, w := range words {
		if w == flag && i+1 < len(words) {
			value = words[i+1]
		}
		if v, ok := strings.CutPrefix(w, flag+"="); ok {
			value = v
		}
	}
	return value
}
