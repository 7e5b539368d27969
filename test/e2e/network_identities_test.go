//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// checkNetworkPolicies proves the instances' NetworkPolicies are enforced (by the local
// cluster's enforcer, test/cluster/netpol): a pod of the instances' namespace reaches their client
// ports and not their agents; a pod of an unrelated namespace reaches none of them. The agents do
// listen: the host (not subject to policies, like the kubelet's probes) reaches them.
func checkNetworkPolicies(t *testing.T, ns string, insts ...*v1alpha1.ServiceInstance) {
	t.Helper()
	ports := map[string][]int{"postgres": {5432}, "rabbitmq": {5672, 15672}}
	var clients, agents []string
	for _, inst := range insts {
		pods := &corev1.PodList{}
		if err := env.c.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			checkAPIToken(t, &p, inst.Spec.Engine == "postgres")
			for _, port := range ports[inst.Spec.Engine] {
				clients = append(clients, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
			}
			agents = append(agents, net.JoinHostPort(p.Status.PodIP, "8000"))
		}
	}
	for _, a := range agents {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("the agent at %s does not answer the host: %v", a, err)
		}
		c.Close()
	}
	dial := func(ns, pod string) map[string]bool {
		out := runPod(t, ns, pod, corev1.PodSucceeded, append([]string{"dial", "-for", "8s"}, append(clients, agents...)...)...)
		open := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if addr, ok := strings.CutPrefix(line, "open "); ok {
				open[addr] = true
			}
		}
		t.Logf("NETPOL: from namespace %s:\n%s", ns, out)
		return open
	}
	own := dial(ns, "netpol-own")
	outsider := dial(testNamespace(t, "outsider"), "netpol-outsider")
	for _, a := range clients {
		if !own[a] {
			t.Errorf("a pod of the instance's namespace cannot reach the client port %s", a)
		}
		if outsider[a] {
			t.Errorf("a pod of an unrelated namespace reaches the client port %s", a)
		}
	}
	for _, a := range agents {
		if own[a] || outsider[a] {
			t.Errorf("an application pod reaches the agent at %s (own namespace: %v, unrelated: %v)", a, own[a], outsider[a])
		}
	}
}

// checkAPIToken: only pods whose agent talks to the API server (PostgreSQL's, for its lease) get a
// token, and theirs is their own account's, never the namespace's default.
func checkAPIToken(t *testing.T, p *corev1.Pod, needsAPI bool) {
	t.Helper()
	mounted := slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Projected != nil && slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil })
	})
	switch {
	case needsAPI && (!mounted || p.Spec.ServiceAccountName == "default"):
		t.Errorf("pod %s needs its own account's token (account %q, token mounted: %v)", p.Name, p.Spec.ServiceAccountName, mounted)
	case !needsAPI && mounted:
		t.Errorf("pod %s has a service account token it does not need (account %q)", p.Name, p.Spec.ServiceAccountName)
	}
}

// checkMetricsAuth scrapes the operator's metrics as Prometheus would, over HTTPS with a service
// account token, from the host: without a token, or with one whose account is not bound to the
// chart's metrics-reader ClusterRole, there are no metrics.
func checkMetricsAuth(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ns := testNamespace(t, "scraper")
	token := func(sa string, reader bool) string {
		if err := env.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
		if reader {
			b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + sa},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: releaseName + "-metrics-reader"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}}}
			if err := env.c.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = env.c.Delete(context.Background(), b) })
		}
		tr, err := env.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	pods := &corev1.PodList{}
	if err := env.c.List(ctx, pods, client.InNamespace(releaseNamespace), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil || len(pods.Items) == 0 {
		t.Fatalf("the operator's pods: %v (%d)", err, len(pods.Items))
	}
	url := "https://" + net.JoinHostPort(pods.Items[0].Status.PodIP, "8080") + "/metrics"
	// The certificate is the self-signed one controller-runtime makes, as a scraper is told in docs/install.md.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("scraping %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(body)
	}
	reader := token("prometheus", true)
	stranger := token("stranger", false)
	// RBAC bindings take a moment to reach the authorizer's cache.
	testenv.Eventually(t, waitTimeout, func() error {
		code, body := scrape(reader)
		return expect(code == http.StatusOK && strings.Contains(body, "controller_runtime_reconcile_total"),
			"the metrics-reader's token gets the metrics", fmt.Sprintf("%d %.200s", code, body))
	})
	for name, c := range map[string]struct {
		token string
		want  int
	}{"no token": {"", http.StatusUnauthorized}, "an unbound account's token": {stranger, http.StatusForbidden}} {
		if code, body := scrape(c.token); code != c.want || strings.Contains(body, "controller_runtime") {
			t.Errorf("%s: %d %.200s, want %d without metrics", name, code, body, c.want)
		}
	}
	t.Logf("METRICS: served over HTTPS to the metrics-reader's token only (no token: 401, unbound account: 403)")
}
