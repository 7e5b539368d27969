// Package chart checks the Helm chart with helm itself: it lints, it renders, and what it renders is
// least-privilege and runs under the restricted Pod Security profile.
package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// kubeVersion is what helm template renders for; a helm built with go install defaults to v1.20.
const kubeVersion = "1.37.1"

func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "datafleet") }

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		t.Fatal("HELM is not set: run `make test`, which builds helm from its Go module into the cache " +
			"(or: go install helm.sh/helm/v3/cmd/helm@v3.22.0 and set HELM to its path)")
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String(), errors.New(stderr.String())
	}
	return out.String(), nil
}

func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "datafleet", chartDir(), "--namespace", "datafleet-system", "--include-crds", "--kube-version", kubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := yaml.UnmarshalStrict(b, &out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &out
}

func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir()); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestRendersEveryCRDAndTheManager(t *testing.T) {
	objs := render(t)
	if n := len(byKind(objs, "CustomResourceDefinition")); n != 8 {
		t.Errorf("want the 8 Datafleet CRDs, got %d", n)
	}
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if len(byKind(objs, kind)) == 0 {
			t.Errorf("no %s rendered", kind)
		}
	}
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	objs := render(t)
	var rules []rbacv1.PolicyRule
	for _, u := range byKind(objs, "ClusterRole") {
		rules = append(rules, convert[rbacv1.ClusterRole](t, u).Rules...)
	}
	for _, u := range byKind(objs, "Role") {
		rules = append(rules, convert[rbacv1.Role](t, u).Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no RBAC rules rendered")
	}
	for _, r := range rules {
		for _, field := range [][]string{r.Verbs, r.Resources, r.APIGroups} {
			if slices.Contains(field, "*") {
				t.Errorf("wildcard in rule %+v", r)
			}
		}
		if slices.Contains(r.Resources, "secrets") && slices.Contains(r.APIGroups, "") && len(r.ResourceNames) == 0 {
			// Secrets are needed (bindings, credentials); escalation paths are not.
			for _, bad := range []string{"escalate", "bind", "impersonate"} {
				if slices.Contains(r.Verbs, bad) {
					t.Errorf("rule %+v grants %s", r, bad)
				}
			}
		}
	}
}

func TestManagerPodIsRestricted(t *testing.T) {
	d := convert[appsv1.Deployment](t, byKind(render(t), "Deployment")[0])
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod must set runAsNonRoot")
	}
	if pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod must use the RuntimeDefault seccomp profile")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container security context is not restricted: %+v", sc)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("manager needs liveness and readiness probes")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("manager needs memory requests and limits")
	}
	if !slices.Contains(c.Args, "--leader-elect=true") {
		t.Errorf("leader election should be on by default: %v", c.Args)
	}
}

func TestValuesReachTheManager(t *testing.T) {
	d := convert[appsv1.Deployment](t, byKind(render(t,
		"engines={postgres,rabbitmq}", "logLevel=debug", "metrics.enabled=false", "image.tag=abc"), "Deployment")[0])
	c := d.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--engines=postgres,rabbitmq", "--zap-log-level=debug", "--metrics-bind-address=0"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if !strings.HasSuffix(c.Image, ":abc") {
		t.Errorf("image %s does not use the tag value", c.Image)
	}
}

func TestBadValuesFailClearly(t *testing.T) {
	_, err := helm(t, "template", "datafleet", chartDir(), "--kube-version", kubeVersion, "--set", "logLevel=verbose")
	if err == nil || !strings.Contains(err.Error(), "logLevel must be debug, info or error") {
		t.Fatalf("want a clear error for a bad logLevel, got %v", err)
	}
}
