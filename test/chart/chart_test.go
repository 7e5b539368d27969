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
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/webhook"
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
		if slices.Contains(r.Resources, "validatingwebhookconfigurations") && !slices.Equal(r.ResourceNames, []string{"datafleet"}) {
			t.Errorf("the manager may touch webhook configurations other than its own: %+v", r)
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
	// The store policy: strict by default, as the values say.
	if !slices.Contains(c.Args, "--store-allow-ambient-credentials=false") || slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--store-allowed-endpoints")
	}) {
		t.Errorf("by default the store policy allows something: %v", c.Args)
	}
	for _, want := range []string{"--rollout-canaries=1", "--rollout-max-concurrent=5", "--rollout-ready-timeout=15m"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	// The default maintenance window: none unless set, and then what the manager reads as JSON.
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--maintenance-window") }) {
		t.Errorf("a maintenance window by default: %v", c.Args)
	}
	d = convert[appsv1.Deployment](t, byKind(render(t, "maintenanceWindow.days={Sat,Sun}", "maintenanceWindow.startTime=02:00",
		"maintenanceWindow.duration=2h"), "Deployment")[0])
	if want := `--maintenance-window={"days":["Sat","Sun"],"duration":"2h","startTime":"02:00"}`; !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, want) {
		t.Errorf("args %v lack %s", d.Spec.Template.Spec.Containers[0].Args, want)
	}
	d = convert[appsv1.Deployment](t, byKind(render(t, "backupStores.allowAmbientCredentials=true",
		"backupStores.allowedEndpoints={minio.*.svc:9000,s3.corp.example:443}"), "Deployment")[0])
	for _, want := range []string{"--store-allow-ambient-credentials=true", "--store-allowed-endpoints=minio.*.svc:9000,s3.corp.example:443"} {
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, want) {
			t.Errorf("args %v lack %s", d.Spec.Template.Spec.Containers[0].Args, want)
		}
	}
}

func TestBadValuesFailClearly(t *testing.T) {
	_, err := helm(t, "template", "datafleet", chartDir(), "--kube-version", kubeVersion, "--set", "logLevel=verbose")
	if err == nil || !strings.Contains(err.Error(), "logLevel must be debug, info or error") {
		t.Fatalf("want a clear error for a bad logLevel, got %v", err)
	}
}

func TestWebhookAndItsCertificate(t *testing.T) {
	// By default the operator issues the certificate itself: an emptyDir for it, no cert-manager kinds.
	objs := render(t)
	vwc := convert[admissionregistrationv1.ValidatingWebhookConfiguration](t, byKind(objs, "ValidatingWebhookConfiguration")[0])
	d := convert[appsv1.Deployment](t, byKind(objs, "Deployment")[0])
	c := d.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--webhook-configuration=" + vwc.Name, "--webhook-service=datafleet-webhook", "--webhook-self-signed=true"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	// Each webhook calls the path the manager serves its kind's validator on.
	paths := map[string]string{"serviceinstances": webhook.InstancePath, "servicebindings": webhook.BindingPath,
		"backupplans": webhook.PlanPath, "backupstores": webhook.StorePath, "namespaces": webhook.NamespacePath}
	if len(vwc.Webhooks) != len(paths)+1 {
		t.Errorf("%d webhooks, want one for each of %v and a second for namespaces", len(vwc.Webhooks), paths)
	}
	protectedHooks := 0
	for _, w := range vwc.Webhooks {
		svc := w.ClientConfig.Service
		if svc == nil || svc.Name != "datafleet-webhook" || svc.Namespace != "datafleet-system" || len(w.Rules) != 1 ||
			len(w.Rules[0].Resources) != 1 || *svc.Path != paths[w.Rules[0].Resources[0]] {
			t.Errorf("webhook %s calls %+v for %+v", w.Name, svc, w.Rules)
		}
		// Instances wait for the webhook (the catalog decides what may run); bindings and plans do
		// not: their controllers check targets and schedules again. Namespace deletions wait for it only where the
		// operator labelled the namespace as holding a protected instance.
		want := map[string]admissionregistrationv1.FailurePolicyType{"serviceinstances": admissionregistrationv1.Fail,
			"servicebindings": admissionregistrationv1.Ignore, "backupplans": admissionregistrationv1.Ignore, "backupstores": admissionregistrationv1.Ignore,
			"namespaces": admissionregistrationv1.Ignore}[w.Rules[0].Resources[0]]
		if sel := w.ObjectSelector; sel != nil && len(sel.MatchExpressions) == 1 && sel.MatchExpressions[0].Key == names.ProtectedLabel &&
			sel.MatchExpressions[0].Operator == metav1.LabelSelectorOpIn {
			want = admissionregistrationv1.Fail
			protectedHooks++
		}
		if *w.FailurePolicy != want {
			t.Errorf("webhook %s: failurePolicy %s, want %s by default", w.Name, *w.FailurePolicy, want)
		}
	}
	if protectedHooks != 1 {
		t.Errorf("%d namespace webhooks select the namespaces labelled %s, want 1", protectedHooks, names.ProtectedLabel)
	}
	if len(byKind(objs, "Certificate")) != 0 || d.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Error("without cert-manager the certificate must go to an emptyDir, with no Certificate object")
	}

	objs = render(t, "webhook.certManager.enabled=true")
	vwc = convert[admissionregistrationv1.ValidatingWebhookConfiguration](t, byKind(objs, "ValidatingWebhookConfiguration")[0])
	d = convert[appsv1.Deployment](t, byKind(objs, "Deployment")[0])
	cert := byKind(objs, "Certificate")
	if len(cert) != 1 || len(byKind(objs, "Issuer")) != 1 {
		t.Fatalf("with cert-manager: %d Certificates, %d Issuers; want one of each", len(cert), len(byKind(objs, "Issuer")))
	}
	secret, _, _ := unstructured.NestedString(cert[0].Object, "spec", "secretName")
	if v := d.Spec.Template.Spec.Volumes[0]; v.Secret == nil || v.Secret.SecretName != secret {
		t.Errorf("the manager mounts %+v, not the Certificate's Secret %s", v, secret)
	}
	if vwc.Annotations["cert-manager.io/inject-ca-from"] != "datafleet-system/"+cert[0].GetName() ||
		!slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--webhook-self-signed=false") {
		t.Errorf("cert-manager must inject the CA (annotations %v) and the operator must not issue one", vwc.Annotations)
	}
	if objs = render(t, "webhook.certManager.enabled=true", "webhook.certManager.issuerRef.name=corp-ca",
		"webhook.certManager.issuerRef.kind=ClusterIssuer"); len(byKind(objs, "Issuer")) != 0 {
		t.Error("a named issuer must replace the chart's self-signed one")
	}
}

func TestCatalogsShipForTheBuiltImages(t *testing.T) {
	cats := map[string]*v1alpha1.VersionCatalog{}
	for _, u := range byKind(render(t), "VersionCatalog") {
		cats[u.GetName()] = convert[v1alpha1.VersionCatalog](t, u)
	}
	for engine, versions := range map[string][]string{"postgres": {"15", "17"}, "rabbitmq": {"3.10", "4.0"}} {
		cat := cats[engine]
		if cat == nil {
			t.Errorf("no %s VersionCatalog", engine)
			continue
		}
		if got := catalog.Versions(cat); !slices.Equal(got, versions) {
			t.Errorf("%s versions %v, want %v", engine, got, versions)
		}
		if cat.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("%s: uninstalling the chart would delete the catalog its instances depend on", engine)
		}
	}
	// RabbitMQ 3.10 -> 4.0 is not an in-place path upstream: the catalog sends users blue/green.
	if p, ok := catalog.Path(cats["rabbitmq"], "3.10", "4.0"); !ok || p.Method != v1alpha1.UpgradeBlueGreen || !strings.Contains(p.Note, "3.13") {
		t.Errorf("rabbitmq 3.10 -> 4.0 path: %+v", p)
	}
	if len(byKind(render(t, "catalogs.create=false"), "VersionCatalog")) != 0 {
		t.Error("catalogs.create=false still renders catalogs")
	}
	if _, err := helm(t, "template", "datafleet", chartDir(), "--kube-version", kubeVersion, "--set", "webhook.failurePolicy=Never"); err == nil ||
		!strings.Contains(err.Error(), "webhook.failurePolicy must be Fail or Ignore") {
		t.Errorf("a bad failurePolicy: %v", err)
	}
}

// The instances' NetworkPolicies admit the operator by the labels the chart passes: they must be
// the Deployment's pod labels, or every policy locks the operator out of every instance.
func TestNetworkPoliciesAdmitTheOperatorsPods(t *testing.T) {
	d := convert[appsv1.Deployment](t, byKind(render(t), "Deployment")[0])
	c := d.Spec.Template.Spec.Containers[0]
	i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--network-policy-operator-labels=") })
	if i < 0 {
		t.Fatalf("NetworkPolicies are on by default, but the manager is not told its pods' labels: %v", c.Args)
	}
	want, err := labels.ConvertSelectorToLabelsMap(strings.TrimPrefix(c.Args[i], "--network-policy-operator-labels="))
	if err != nil {
		t.Fatal(err)
	}
	if !labels.SelectorFromSet(want).Matches(labels.Set(d.Spec.Template.Labels)) || len(want) < 2 {
		t.Errorf("the policies would admit pods labelled %v; the operator's are %v", want, d.Spec.Template.Labels)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Error("the manager needs POD_NAMESPACE, the namespace the policies admit the operator from")
	}
	if !ruleGrants(t, render(t), "networking.k8s.io", "networkpolicies", "create", "delete", "watch") {
		t.Error("the manager may not create, delete and watch NetworkPolicies")
	}

	d = convert[appsv1.Deployment](t, byKind(render(t, "networkPolicy.enabled=false"), "Deployment")[0])
	if slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--network-policy") }) {
		t.Errorf("networkPolicy.enabled=false still renders policies: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
}

// ruleGrants says whether one ClusterRole rule grants every verb on the resource.
func ruleGrants(t *testing.T, objs []*unstructured.Unstructured, group, resource string, verbs ...string) bool {
	for _, u := range byKind(objs, "ClusterRole") {
		for _, r := range convert[rbacv1.ClusterRole](t, u).Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && !slices.ContainsFunc(verbs, func(v string) bool {
				return !slices.Contains(r.Verbs, v)
			}) {
				return true
			}
		}
	}
	return false
}

// Metrics are served over HTTPS behind the API server's authentication and authorisation by
// default: the manager may ask for token and access reviews, and scrapers get a role to bind.
func TestMetricsAreAuthenticated(t *testing.T) {
	objs := render(t)
	d := convert[appsv1.Deployment](t, byKind(objs, "Deployment")[0])
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--metrics-secure=true") {
		t.Errorf("metrics are not secured by default: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
	if !ruleGrants(t, objs, "authentication.k8s.io", "tokenreviews", "create") || !ruleGrants(t, objs, "authorization.k8s.io", "subjectaccessreviews", "create") {
		t.Error("the manager may not review the scrapers' tokens and access")
	}
	reader := false
	for _, u := range byKind(objs, "ClusterRole") {
		if u.GetName() == "datafleet-metrics-reader" {
			r := convert[rbacv1.ClusterRole](t, u).Rules
			reader = len(r) == 1 && slices.Equal(r[0].NonResourceURLs, []string{"/metrics"}) && slices.Equal(r[0].Verbs, []string{"get"})
		}
	}
	if !reader {
		t.Error("no datafleet-metrics-reader ClusterRole granting GET /metrics and nothing else")
	}
	// The Service carries the annotations Prometheus setups without the operator discover by.
	annotated := false
	for _, u := range byKind(objs, "Service") {
		a := u.GetAnnotations()
		annotated = annotated || (u.GetName() == "datafleet-metrics" && a["prometheus.io/scrape"] == "true" &&
			a["prometheus.io/scheme"] == "https" && a["prometheus.io/port"] == "8080")
	}
	if !annotated {
		t.Error("no datafleet-metrics Service annotated prometheus.io/scrape, scheme https, port 8080")
	}
	d = convert[appsv1.Deployment](t, byKind(render(t, "metrics.secure=false"), "Deployment")[0])
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--metrics-secure=false") {
		t.Errorf("metrics.secure=false does not reach the manager: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
}

// Monitoring is off by default. On, the PodMonitor scrapes the agents with the scrape token the
// manager keeps, the PrometheusRule carries the tested rule file as it is, and each generated
// dashboard becomes a ConfigMap for Grafana's sidecar; the scraper's namespace reaches the manager.
func TestMonitoringObjects(t *testing.T) {
	for _, kind := range []string{"PodMonitor", "ServiceMonitor", "PrometheusRule"} {
		if len(byKind(render(t), kind)) != 0 {
			t.Errorf("a %s is rendered by default", kind)
		}
	}
	objs := render(t, "monitoring.podMonitor.enabled=true", "monitoring.prometheusRule.enabled=true", "monitoring.dashboards.enabled=true",
		"metrics.agents.scraper.namespace=monitoring", "monitoring.labels.release=kps")
	d := convert[appsv1.Deployment](t, byKind(objs, "Deployment")[0])
	args := d.Spec.Template.Spec.Containers[0].Args
	var secret string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-scrape-token-secret="); ok {
			secret = v
		}
	}
	if secret == "" || !slices.Contains(args, "--network-policy-scraper-namespace=monitoring") {
		t.Fatalf("the manager keeps no scrape token or admits no scraper: %v", args)
	}
	pm := byKind(objs, "PodMonitor")
	if len(pm) != 1 {
		t.Fatalf("%d PodMonitors", len(pm))
	}
	ep, _, _ := unstructured.NestedSlice(pm[0].Object, "spec", "podMetricsEndpoints")
	if name, _, _ := unstructured.NestedString(ep[0].(map[string]any), "authorization", "credentials", "name"); name != secret {
		t.Errorf("the PodMonitor presents the token of Secret %q, the manager keeps it in %q", name, secret)
	}
	if pm[0].GetLabels()["release"] != "kps" || len(byKind(objs, "ServiceMonitor")) != 1 {
		t.Errorf("monitoring.labels missing, or no ServiceMonitor for the operator")
	}
	rule := byKind(objs, "PrometheusRule")
	b, err := os.ReadFile(filepath.Join(chartDir(), "files", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(rule) != 1 || !reflect.DeepEqual(rule[0].Object["spec"], file) {
		t.Errorf("the PrometheusRule's spec is not the rule file")
	}
	dashboards, _ := filepath.Glob(filepath.Join(chartDir(), "files", "dashboards", "*.json"))
	n := 0
	for _, cm := range byKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] == "1" {
			n++
		}
	}
	if n != len(dashboards) || n < 2 {
		t.Errorf("%d dashboard ConfigMaps for %d dashboards", n, len(dashboards))
	}
}

// The pre-upgrade hook that applies the CRDs: a Job running the operator's image with every file
// of crds/ mounted byte for byte, restricted like the manager, whose ClusterRole reaches only
// Datafleet's CRDs by name (create cannot be named); all of it exists only as hooks, and not at
// all when crds.upgrade is false.
func TestCRDUpgradeHook(t *testing.T) {
	objs := render(t)
	var hooks []*unstructured.Unstructured
	for _, o := range objs {
		if strings.HasSuffix(o.GetName(), "-crd-upgrade") {
			hooks = append(hooks, o)
			if o.GetAnnotations()["helm.sh/hook"] != "pre-upgrade" {
				t.Errorf("%s %s is not a pre-upgrade hook: %v", o.GetKind(), o.GetName(), o.GetAnnotations())
			}
		}
	}
	if len(hooks) != 5 {
		t.Fatalf("want the hook's ConfigMap, ServiceAccount, ClusterRole, ClusterRoleBinding and Job, got %d objects", len(hooks))
	}
	cm := convert[corev1.ConfigMap](t, byKind(hooks, "ConfigMap")[0])
	files, err := filepath.Glob(filepath.Join(chartDir(), "crds", "*.yaml"))
	if err != nil || len(files) != 8 {
		t.Fatalf("the chart's CRD files: %v, %d", err, len(files))
	}
	var crdNames []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[filepath.Base(f)] != string(b) {
			t.Errorf("the hook's ConfigMap does not carry %s as it is", filepath.Base(f))
		}
		var crd metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		crdNames = append(crdNames, crd.Name)
	}
	role := convert[rbacv1.ClusterRole](t, byKind(hooks, "ClusterRole")[0])
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{"apiextensions.k8s.io"}) || !slices.Equal(r.Resources, []string{"customresourcedefinitions"}) {
			t.Errorf("the hook's role reaches beyond CRDs: %+v", r)
		}
		if len(r.ResourceNames) == 0 && !slices.Equal(r.Verbs, []string{"create"}) {
			t.Errorf("the hook's role grants %v on every CRD", r.Verbs)
		}
		if len(r.ResourceNames) > 0 && !slices.Equal(slices.Sorted(slices.Values(r.ResourceNames)), slices.Sorted(slices.Values(crdNames))) {
			t.Errorf("the hook's role names %v, the chart's CRDs are %v", r.ResourceNames, crdNames)
		}
	}
	job := convert[batchv1.Job](t, byKind(hooks, "Job")[0])
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]
	d := convert[appsv1.Deployment](t, byKind(objs, "Deployment")[0])
	if c.Image != d.Spec.Template.Spec.Containers[0].Image || !slices.Equal(c.Args, []string{"apply-crds", "/crds"}) {
		t.Errorf("the hook runs %s %v, want the manager's image with apply-crds /crds", c.Image, c.Args)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
		!slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") {
		t.Errorf("the hook's pod is not restricted: %+v %+v", pod.SecurityContext, c.SecurityContext)
	}
	for _, o := range render(t, "crds.upgrade=false") {
		if strings.HasSuffix(o.GetName(), "-crd-upgrade") {
			t.Errorf("crds.upgrade=false still renders %s %s", o.GetKind(), o.GetName())
		}
	}
}
