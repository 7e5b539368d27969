package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Help for every command, and shell completion as kubectl's plugin completion asks for it
// (kubectl_complete-datafleet WORDS... PARTIAL), against a real API server: commands, flags,
// flag values, and the names each command takes from the namespace the words name.
func TestHelpAndCompletion(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	kubeconfig := writeKubeconfig(t, env)
	call := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, &out); err != nil {
			t.Fatalf("kubectl datafleet %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}

	usage := call("help")
	for _, cmd := range commandTable {
		if !strings.Contains(usage, "kubectl datafleet "+cmd.synopsis) {
			t.Errorf("help does not show %q", cmd.synopsis)
		}
		for _, args := range [][]string{append(strings.Fields(cmd.name), "--help"), append([]string{"help"}, strings.Fields(cmd.name)...)} {
			if out := call(args...); !strings.HasPrefix(out, "usage: kubectl datafleet "+cmd.synopsis+"\n") || !strings.Contains(out, strings.Fields(cmd.help)[0]) {
				t.Errorf("kubectl datafleet %s: %q", strings.Join(args, " "), out)
			}
		}
	}

	for _, ns := range []string{"shop", "other"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []struct{ ns, name string }{{"shop", "orders"}, {"shop", "outbox"}, {"shop", "ledger"}, {"other", "orphans"}} {
		if err := c.Create(ctx, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: o.name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("orders-%d", i), Labels: names.InstanceLabels("postgres", "orders")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "pg"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "outbox-0", Labels: names.InstanceLabels("postgres", "outbox")},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "pg"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-app"},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "orders"}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-nightly"},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}}}); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		out := call(append([]string{completeCommand, "--kubeconfig", kubeconfig, "-n", "shop"}, words...)...)
		if !strings.HasSuffix(out, ":4\n") {
			t.Fatalf("completing %v: %q does not end with cobra's directive", words, out)
		}
		return strings.Join(strings.Fields(strings.TrimSuffix(out, ":4\n")), " ")
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"r"}, "report restore resume rollout rotate"},
		{[]string{"rollout", ""}, "status"},
		{[]string{"help", "sw"}, "switchover"},
		{[]string{"pause", "o"}, "orders outbox"},
		{[]string{"status", ""}, "ledger orders outbox"},
		{[]string{"switchover", "orders", ""}, "orders-0 orders-1"},
		{[]string{"switchover", "orders", "orders-1", ""}, ""},
		{[]string{"rotate", ""}, "orders-app"},
		{[]string{"restore", ""}, "orders-nightly"},
		{[]string{"restore", "orders-nightly", "--to", ""}, ""},
		{[]string{"backup", "orders", "--method", ""}, "Logical Physical"},
		{[]string{"backup", "orders", "--w"}, "--wait"},
		{[]string{"status", "-n", "o"}, "other"},
		{[]string{"status", "-n", "other", ""}, "orphans"},
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("completing %q: %q, want %q", c.words, got, c.want)
		}
	}
}
