//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// monitoringNamespace runs the e2e's Prometheus; the chart is installed with it as the agents'
// scraper (testInstall), so the instances' NetworkPolicies admit it, and nothing else, on the
// metrics port.
const monitoringNamespace = "datafleet-e2e-monitoring"

// scraperLabels are the Prometheus pod's labels, which the NetworkPolicies admit.
var scraperLabels = map[string]string{"app": "prometheus"}

// testObservability runs a real Prometheus (built from its Go module) in the cluster, scraping every
// agent (HTTPS, the scrape token, through the NetworkPolicies) and the operator (HTTPS, a token the
// API server authorises), as docs/observability.md configures it. Every metric the docs list is
// present for every engine; a PostgreSQL replica's lag rises while its replay is paused and falls
// after; the chart's alert rules load and evaluate; every panel of every dashboard returns data.
func testObservability(t *testing.T) {
	ctx := context.Background()
	ns := testNamespace(t, "metrics")
	minioStore(t, ns)
	// The PostgreSQL instance runs a version with a sundown ahead, for that figure and its panel:
	// the shipped catalog's, or the default one given a sundown for the step.
	pgCatalog := &v1alpha1.VersionCatalog{}
	if err := env.c.Get(ctx, client.ObjectKey{Name: "postgres"}, pgCatalog); err != nil {
		t.Fatal(err)
	}
	versions := slices.Clone(pgCatalog.Spec.Versions)
	i := slices.IndexFunc(versions, func(v v1alpha1.CatalogVersion) bool { return v.Sundown != nil && v.Sundown.After(time.Now()) })
	if i < 0 {
		i = slices.IndexFunc(versions, func(v v1alpha1.CatalogVersion) bool { return v.Default })
		versions[i].Sundown = &metav1.Time{Time: time.Now().Add(400 * 24 * time.Hour).Truncate(time.Second)}
		ensureCatalog(t, "postgres", versions...)
	}

	pg := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "pg", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{
		Engine: "postgres", Version: versions[i].Version, Replicas: ptr(int32(2)), TLS: &v1alpha1.TLSSpec{Enabled: true}, DeletionPolicy: v1alpha1.DeletionPolicyDelete,
		Backup: &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"},
			Continuous: &v1alpha1.ContinuousArchiving{ArchiveTimeout: &metav1.Duration{Duration: 10 * time.Second}}}}}
	mq := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "mq", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{
		Engine: "rabbitmq", Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")}, DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	docs := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "mongodb", Version: "ferretdb-1.24", DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	for _, inst := range []*v1alpha1.ServiceInstance{pg, mq, docs} {
		createInstance(t, inst)
	}
	prom := deployPrometheus(t)
	for _, inst := range []*v1alpha1.ServiceInstance{pg, mq, docs} {
		waitInstanceReady(t, inst)
	}
	appSecret := waitBound(t, createBinding(t, ns, "app", "pg", v1alpha1.RoleReadWrite, "shop"), nil)
	// Messages waiting in a queue, for the broker's figures and the RabbitMQ dashboard.
	publishConfirmed(t, amqpURL(t, mq), "metrics", 10, nil)
	// Physical backups of an archiving instance: the plan's drills restore to a point in time, so
	// that every drill figure (the recovery point too) and every archive figure is there.
	plan := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: "minutely", Namespace: ns}, Spec: v1alpha1.BackupPlanSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: "pg"}, Schedule: "* * * * *", Method: v1alpha1.BackupPhysical,
		Retention: &v1alpha1.BackupRetention{Count: ptr[int32](2)}, Drill: &v1alpha1.BackupDrill{Schedule: "*/2 * * * *"}}}
	if err := env.c.Create(ctx, plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteBackups(t, ns) })

	// Both jobs' targets are up: the agents through the NetworkPolicies with the token, the operator.
	testenv.Eventually(t, waitTimeout, func() error {
		up := prom.query(t, `count by (job) (up == 1)`)
		agents, operator := up.value(`job="datafleet-agents"`), up.value(`job="datafleet-operator"`)
		return expect(agents >= 4 && operator == 1, "Prometheus scrapes the 4 agents and the operator",
			fmt.Sprintf("up: %s; targets: %s", up, prom.get(t, "/api/v1/targets?state=active")))
	})
	// Without the token, or in clear, an agent gives nothing.
	checkAgentRefusesScrapes(t, ns, "pg-0")

	// Every figure docs/observability.md lists, for every engine where it applies.
	instances := map[string]string{"postgres": "pg", "rabbitmq": "mq", "mongodb": "docs"}
	for _, name := range documentedMetrics(t) {
		engines, why := metricEngines(name)
		if why != "" {
			t.Logf("OBSERVABILITY: %s is not checked here: %s", name, why)
		}
		for _, e := range engines {
			sel := fmt.Sprintf(`%s{namespace=%q,serviceinstance=%q}`, name, ns, instances[e])
			if strings.HasPrefix(name, "datafleet_backupplan_") {
				sel = fmt.Sprintf(`%s{namespace=%q,backupplan=%q}`, name, ns, plan.Name)
			}
			patience := 4 * time.Minute
			if strings.HasPrefix(name, "datafleet_backupplan_drill_") {
				// The first drill waits for the plan's first backup, then for the archive to reach
				// its target.
				patience = 8 * time.Minute
			}
			testenv.Eventually(t, patience, func() error {
				r := prom.query(t, sel)
				// Every figure Datafleet exports is a count, a size, a time or a flag: never
				// negative, never NaN or infinite.
				sane := !slices.ContainsFunc(r, func(s sample) bool { return s.v < 0 || math.IsNaN(s.v) || math.IsInf(s.v, 0) })
				return expect(len(r) > 0 && sane, sel+" is scraped, with sane values", r.String())
			})
		}
	}

	// The figures are in; the plan's backups and drills stop, so that none reads from the replica
	// paused next.
	patchPlan(t, plan, func(s *v1alpha1.BackupPlanSpec) { s.Suspend, s.Drill = true, nil })

	// A replica's lag rises while its replay is paused, and falls once it replays again.
	replica := "pg-1"
	if pgNow := instanceNow(t, pg); pgNow.Status.CurrentPrimary == "pg-1" {
		replica = "pg-0"
	}
	lag := fmt.Sprintf(`datafleet_postgres_replication_lag_bytes{namespace=%q,serviceinstance="pg",replica=%q}`, ns, replica)
	testenv.Eventually(t, waitTimeout, func() error {
		r := prom.query(t, lag)
		return expect(len(r) == 1 && r[0].v == 0, "the replica has caught up", r.String())
	})
	psql(t, ns, replica, "SELECT pg_wal_replay_pause()")
	primaryPod := instanceNow(t, pg).Status.CurrentPrimary
	psql(t, ns, primaryPod, "CREATE TABLE lag AS SELECT generate_series(1, 200000) AS n")
	testenv.Eventually(t, waitTimeout, func() error {
		r := prom.query(t, lag)
		return expect(len(r) == 1 && r[0].v > 1e6, "the paused replica's lag rises above 1 MB", r.String())
	})
	psql(t, ns, replica, "SELECT pg_wal_replay_resume()")
	testenv.Eventually(t, waitTimeout, func() error {
		r := prom.query(t, lag)
		return expect(len(r) == 1 && r[0].v == 0, "the lag falls to 0 once the replica replays", r.String())
	})

	// kubectl datafleet status shows the same figures to a person; report bundles what support
	// needs of the instance.
	plugin := pluginBinary(t)
	checkStatusCommand(t, plugin, ns, pg, replica)
	checkReportCommand(t, plugin, ns, pg, appSecret)
	checkConnectCommand(t, plugin, ns, appSecret)

	// The chart's rules load and evaluate in a real Prometheus.
	checkRulesEvaluate(t, prom)
	// Every panel of every dashboard returns data (with its variables set to this namespace).
	checkDashboards(t, prom, ns)
	reportExporterCost(t, prom, ns)
}

// metricEngines says on which of the step's instances a documented metric must be found, and why
// it is not checked where it is not.
func metricEngines(name string) ([]string, string) {
	all := []string{"postgres", "rabbitmq", "mongodb"}
	switch {
	case name == "datafleet_instance_pending_restart":
		return nil, "it needs a held restart (framework/instance's envtest shows it)"
	case name == "datafleet_mongodb_up":
		return []string{"mongodb"}, ""
	case name == "datafleet_member_exporter_up", strings.HasPrefix(name, "datafleet_rabbitmq_"):
		return []string{"rabbitmq"}, "" // the engine whose server exports figures of its own
	case name == "datafleet_instance_member":
		return all, ""
	case name == "datafleet_member_role":
		return []string{"postgres", "mongodb"}, "RabbitMQ's nodes have no role"
	case strings.HasPrefix(name, "datafleet_mongodb_"):
		return nil, "FerretDB, the local cluster's MongoDB, does not answer it (docs/observability.md)"
	case strings.HasPrefix(name, "datafleet_member_"), strings.HasPrefix(name, "datafleet_agent_"),
		slices.Contains([]string{"datafleet_instance_info", "datafleet_instance_ready", "datafleet_instance_replicas", "datafleet_instance_ready_replicas"}, name):
		return all, ""
	}
	return []string{"postgres"}, "" // the PostgreSQL instance has everything else: a replica, TLS, a sundown, a binding, a plan
}

// documentedMetrics are the metric names in docs/observability.md's tables (a family ending in _*
// stands for its resident memory figure).
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.root, "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `datafleet_") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`(datafleet_[a-z_*]+)`").FindAllStringSubmatch(cell, -1) {
			name := strings.Replace(m[1], "_*", "_resident_memory_bytes", 1)
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) < 30 {
		t.Fatalf("only %d metrics found in docs/observability.md: %v", len(names), names)
	}
	return names
}

func instanceNow(t *testing.T, inst *v1alpha1.ServiceInstance) *v1alpha1.ServiceInstance {
	t.Helper()
	now := &v1alpha1.ServiceInstance{}
	if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(inst), now); err != nil {
		t.Fatal(err)
	}
	return now
}

// checkAgentRefusesScrapes asks an agent's metrics endpoint from the host (which the policies do
// not filter): it answers HTTPS, and refuses a request without the token (401); over plain HTTP
// nothing gets metrics either.
func checkAgentRefusesScrapes(t *testing.T, ns, podName string) {
	t.Helper()
	pod := &corev1.Pod{}
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: podName}, pod); err != nil {
		t.Fatal(err)
	}
	addr := pod.Status.PodIP + ":9187"
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range []string{"https://" + addr + "/metrics", "http://" + addr + "/metrics"} {
		resp, err := hc.Get(u)
		if err != nil {
			if strings.HasPrefix(u, "https:") {
				t.Fatalf("%s/%s serves no metrics endpoint: %v", ns, podName, err)
			}
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "datafleet_") {
			t.Fatalf("%s answered without the scrape token: %s %q", u, resp.Status, body)
		}
		if strings.HasPrefix(u, "https:") && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %s, want 401 without the scrape token", u, resp.Status)
		}
	}
}

// checkRulesEvaluate waits for Prometheus to have evaluated every rule of the chart's file, healthy.
func checkRulesEvaluate(t *testing.T, prom *prometheus) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.Unmarshal(prom.get(t, "/api/v1/rules"), &r); err != nil {
			return err
		}
		var n int
		var bad []string
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					bad = append(bad, rule.Name+": "+rule.Health+" "+rule.LastError)
				}
			}
		}
		return expect(n >= 10 && len(bad) == 0, "every alert rule loaded and evaluates", fmt.Sprintf("%d rules, unhealthy: %v", n, bad))
	})
}

// checkDashboards runs every panel query of the chart's dashboards, with $namespace the test's
// namespace and $serviceinstance any, and wants data from each.
func checkDashboards(t *testing.T, prom *prometheus, ns string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(env.root, "charts", "datafleet", "files", "dashboards", "*.json"))
	if len(files) < 2 {
		t.Fatalf("dashboards: %v", files)
	}
	vars := strings.NewReplacer("$namespace", ns, "$serviceinstance", ".*")
	for _, f := range files {
		var d struct {
			Panels []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
				Targets     []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			if strings.Contains(p.Description, "(mongod only)") {
				t.Logf("OBSERVABILITY: %s: panel %q is not checked here: FerretDB, the local cluster's MongoDB, does not report it", filepath.Base(f), p.Title)
				continue
			}
			for _, target := range p.Targets {
				expr := vars.Replace(target.Expr)
				testenv.Eventually(t, 2*time.Minute, func() error {
					r := prom.query(t, expr)
					return expect(len(r) > 0, fmt.Sprintf("%s: panel %q returns data", filepath.Base(f), p.Title), expr)
				})
			}
		}
	}
}

// reportExporterCost logs what the agents cost and how long a scrape takes, as measured by the
// Prometheus that scrapes them.
func reportExporterCost(t *testing.T, prom *prometheus, ns string) {
	t.Helper()
	for _, q := range []string{
		fmt.Sprintf(`datafleet_agent_process_resident_memory_bytes{namespace=%q}`, ns),
		fmt.Sprintf(`rate(datafleet_agent_process_cpu_seconds_total{namespace=%q}[2m])`, ns),
		fmt.Sprintf(`scrape_duration_seconds{job="datafleet-agents",namespace=%q}`, ns),
		`scrape_duration_seconds{job="datafleet-operator"}`,
	} {
		t.Logf("OBSERVABILITY: %s:\n%s", q, prom.query(t, q))
	}
}

// prometheus is the e2e's Prometheus, reached from the host through its Service.
type prometheus struct{ addr string }

type sample struct {
	labels string
	v      float64
}

type samples []sample

func (s samples) String() string {
	var b strings.Builder
	for _, x := range s {
		fmt.Fprintf(&b, "{%s} %g; ", x.labels, x.v)
	}
	return b.String()
}

// value is the value of the sample whose labels contain label (0 if none).
func (s samples) value(label string) float64 {
	for _, x := range s {
		if strings.Contains(x.labels, label) {
			return x.v
		}
	}
	return 0
}

func (p *prometheus) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %s", path, resp.Status, err, b)
	}
	return b
}

// query evaluates an instant PromQL query; a query Prometheus refuses fails the test.
func (p *prometheus) query(t *testing.T, expr string) samples {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(p.get(t, "/api/v1/query?query="+url.QueryEscape(expr)), &r); err != nil {
		t.Fatal(err)
	}
	var out samples
	for _, x := range r.Data.Result {
		var labels []string
		for k, v := range x.Metric {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(labels)
		var v float64
		fmt.Sscan(fmt.Sprint(x.Value[1]), &v)
		out = append(out, sample{strings.Join(labels, ","), v})
	}
	return out
}

// deployPrometheus runs Prometheus in monitoringNamespace with the scrape configuration
// docs/observability.md gives for clusters without the Prometheus operator, the chart's alert
// rules, the scrape token copied from the operator's namespace, and a service account allowed to
// discover pods and endpoints and to GET the operator's /metrics.
func deployPrometheus(t *testing.T) *prometheus {
	t.Helper()
	ctx := context.Background()
	if env.images["prometheus"] == "" {
		t.Fatal("no prometheus image: run `make e2e`, which builds it with hack/images.sh")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace, Labels: restricted}}
	if err := env.c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), ns) })
	token := &corev1.Secret{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: releaseName + "-scrape-token"}, token); err != nil {
		t.Fatalf("the operator keeps no scrape token: %v", err)
	}
	rules, err := os.ReadFile(filepath.Join(env.root, "charts", "datafleet", "files", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config := `global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [/etc/prometheus/config/alerts.yaml]
scrape_configs:
- job_name: datafleet-agents
  scheme: https
  authorization: {credentials_file: /etc/prometheus/token/token}
  tls_config: {insecure_skip_verify: true}
  kubernetes_sd_configs: [{role: pod}]
  relabel_configs:
  - {source_labels: [__meta_kubernetes_pod_label_datafleet_dev_engine, __meta_kubernetes_pod_container_port_name], regex: ".+;agent", action: keep}
  - {source_labels: [__meta_kubernetes_pod_ip], regex: "(.+)", replacement: "$1:9187", target_label: __address__}
  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
  - {source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance], target_label: serviceinstance}
  - {source_labels: [__meta_kubernetes_pod_label_datafleet_dev_engine], target_label: engine}
- job_name: datafleet-operator
  scheme: https
  authorization: {credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token}
  tls_config: {insecure_skip_verify: true}
  kubernetes_sd_configs: [{role: endpoints, namespaces: {names: [` + releaseNamespace + `]}}]
  relabel_configs:
  - {source_labels: [__meta_kubernetes_service_name], regex: ` + releaseName + `-metrics, action: keep}
  - {source_labels: [__meta_kubernetes_endpoint_port_name], regex: https-metrics, action: keep}
`
	sa := "prometheus"
	objs := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: monitoringNamespace},
			Data: map[string]string{"prometheus.yml": config, "alerts.yaml": string(rules)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "scrape-token", Namespace: monitoringNamespace}, Data: token.Data},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: monitoringNamespace}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace + "-discovery"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "endpoints", "services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace + "-discovery"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: monitoringNamespace + "-discovery"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: monitoringNamespace, Name: sa}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace + "-metrics-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: releaseName + "-metrics-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: monitoringNamespace, Name: sa}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: monitoringNamespace, Labels: scraperLabels}, Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr[int64](65532), FSGroup: ptr[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "prometheus", Image: env.images["prometheus"], ImagePullPolicy: corev1.PullNever,
				Args: []string{"--config.file=/etc/prometheus/config/prometheus.yml", "--storage.tsdb.path=/data",
					"--web.listen-address=:9090", "--storage.tsdb.retention.time=1h"},
				Ports:          []corev1.ContainerPort{{ContainerPort: 9090}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/-/ready", Port: intstr.FromInt32(9090)}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/prometheus/config"}, {Name: "token", MountPath: "/etc/prometheus/token"},
					{Name: "data", MountPath: "/data"}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "prometheus"}}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "scrape-token"}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: monitoringNamespace}, Spec: corev1.ServiceSpec{
			Selector: scraperLabels, Ports: []corev1.ServicePort{{Name: "web", Port: 9090, TargetPort: intstr.FromInt32(9090)}}}},
	}
	for _, o := range objs {
		if err := env.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		if o.GetNamespace() == "" {
			o := o
			t.Cleanup(func() { _ = env.c.Delete(context.Background(), o) })
		}
	}
	p := &prometheus{addr: serviceAddress(t, monitoringNamespace, "prometheus", 9090)}
	testenv.Eventually(t, waitTimeout, func() error {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return expect(resp.StatusCode == http.StatusOK, "Prometheus is ready", resp.Status)
	})
	return p
}

// pluginBinary builds the kubectl plugin from this tree.
func pluginBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-datafleet")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-datafleet")
	build.Dir = env.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return bin
}

// checkConnectCommand runs `kubectl datafleet connect` on the PostgreSQL binding as an
// application developer does, with psql from the host: psql reaches the binding's database as the
// binding's user through the port-forward, and neither psql's nor the plugin's output shows the
// password.
func checkConnectCommand(t *testing.T, bin, ns string, appSecret *corev1.Secret) {
	t.Helper()
	cmd := exec.Command(bin, "connect", "app", "-n", ns, "--", "-At", "-c", "SELECT session_user || ' ' || current_database()")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("E2E_KUBECONFIG"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl datafleet connect app: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	want := string(appSecret.Data["username"]) + " shop"
	if got := strings.TrimSpace(stdout.String()); got != want {
		t.Fatalf("kubectl datafleet connect app ran psql as %q, want %q (stderr: %s)", got, want, stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), string(appSecret.Data["password"])) {
		t.Fatal("kubectl datafleet connect printed the binding's password")
	}
	t.Logf("OBSERVABILITY: kubectl datafleet connect app -n %s -- -c ...: psql ran as %s", ns, want)
}

// checkReportCommand runs `kubectl datafleet report` on the PostgreSQL instance as a platform
// engineer does: the bundle holds the instance, each pod's containers' logs read through the
// kubelet (the agent's lines), the operator's log lines that name the instance, its events and its
// binding, and none of the binding Secret's password or uri.
func checkReportCommand(t *testing.T, bin, ns string, pg *v1alpha1.ServiceInstance, appSecret *corev1.Secret) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.tar.gz")
	cmd := exec.Command(bin, "report", pg.Name, "-n", ns, "-o", file, "--operator-namespace", releaseNamespace)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("E2E_KUBECONFIG"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl datafleet report: %v\n%s", err, out)
	}
	files := testenv.ReadTarball(t, file)
	names := slices.Sorted(maps.Keys(files))
	t.Logf("OBSERVABILITY: kubectl datafleet report %s -n %s: %d files: %s\nREADME.txt:\n%s", pg.Name, ns, len(files), strings.Join(names, " "), files["README.txt"])
	for _, want := range []string{"instance.yaml", "servicebindings/app.yaml", "events.txt"} {
		if files[want] == "" {
			t.Errorf("the report has no %s", want)
		}
	}
	podLogs, operatorLogs, statefulSets := 0, 0, 0
	for n, content := range files {
		switch {
		case strings.HasPrefix(n, "logs/"+pg.Name+"-") && strings.HasSuffix(n, ".log") && content != "":
			podLogs++
		case strings.HasPrefix(n, "operator/"):
			operatorLogs++ // the lines that name the instance: there may be none on a quiet day
		case strings.HasPrefix(n, "statefulsets/"):
			statefulSets++
		}
		for k, v := range appSecret.Data {
			if (k == "password" || k == "uri") && strings.Contains(content, string(v)) {
				t.Errorf("the report's %s holds the binding's %s", n, k)
			}
		}
	}
	// Every log was read through the kubelet: the README lists none as missing.
	if podLogs < 2 || operatorLogs == 0 || statefulSets == 0 || strings.Contains(files["README.txt"], "log of ") {
		t.Errorf("the report holds %d non-empty logs of the instance's pods (want both pods'), %d of the operator's and %d StatefulSets; README:\n%s",
			podLogs, operatorLogs, statefulSets, files["README.txt"])
	}
}

// checkStatusCommand runs the kubectl plugin, built from this tree, as a platform engineer does:
// `kubectl datafleet status -n NS` prints each instance with its pods' roles, the PostgreSQL
// replica's lag and every pod's connections (read from the agents through port-forwards with the
// scrape token), the last backup's age and the days to the version's sundown.
func checkStatusCommand(t *testing.T, bin, ns string, pg *v1alpha1.ServiceInstance, replica string) {
	t.Helper()
	primary := instanceNow(t, pg).Status.CurrentPrimary
	testenv.Eventually(t, waitTimeout, func() error {
		cmd := exec.Command(bin, "status", "-n", ns, "--scrape-token-secret", releaseNamespace+"/"+releaseName+"-scrape-token")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("E2E_KUBECONFIG"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl datafleet status: %v\n%s", err, out)
		}
		text := string(out)
		t.Logf("OBSERVABILITY: kubectl datafleet status -n %s:\n%s", ns, text)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + ns + `/pg   postgres \S+   Ready   2/2 ready   primary ` + primary + `$`),
			regexp.MustCompile(`(?m)^last backup: \d+[smh] ago   days to sundown: \d+ days`),
			regexp.MustCompile(`(?m)^` + primary + ` +primary +\S.* +- +[1-9]\d* +\d+$`),             // connections, no lag, engine restarts
			regexp.MustCompile(`(?m)^` + replica + ` +replica +.* \d+ B, [\d.e-]+s +[0-9]\d* +\d+$`), // its lag, as the primary sees it
			regexp.MustCompile(`(?m)^mq-0 +node +running +- +\d+ +\d+$`),
			regexp.MustCompile(`(?m)^docs-0 +\S+ +`),
		} {
			if !want.MatchString(text) {
				return fmt.Errorf("the output has no line matching %s", want)
			}
		}
		// The instances checked here answer; a drill's scratch instance restoring beside them
		// may not yet, and says so on its own line.
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "(no lag or connections: ") && regexp.MustCompile(`\b(pg-\d|mq-0|docs-0):`).MatchString(line) {
				return errors.New("the plugin could not read the agents' figures: " + line)
			}
		}
		return nil
	})
}
