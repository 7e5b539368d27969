package webhook_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/webhook"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

const opNamespace = testenv.WebhookNamespace

// storePolicy is the platform's BackupStore policy the tests' webhook runs with: no ambient
// credentials, MinIO in any namespace.
var storePolicy = store.Policy{Endpoints: []string{"minio.*.svc:9000"}}

// startWebhook serves the manager's webhook for the engines (the fake engine when none are
// given), with the operator's own certificate, behind a ValidatingWebhookConfiguration the real
// API server calls, as the chart installs it.
func startWebhook(t testing.TB, env *testenv.Env, engines ...engine.Engine) *webhook.Certs {
	t.Helper()
	return startWebhookWithCache(t, env, cache.Options{}, engines...)
}

// startWebhookWithCache is startWebhook with the manager's cache configured by opts.
func startWebhookWithCache(t testing.TB, env *testenv.Env, opts cache.Options, engines ...engine.Engine) *webhook.Certs {
	t.Helper()
	if len(engines) == 0 {
		engines = []engine.Engine{fakeengine.New()}
	}
	return testenv.ServeWebhook(t, env, opts, storePolicy, engines...)
}

func day(days int) *metav1.Time {
	t := metav1.NewTime(time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, days))
	return &t
}

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func TestWebhookRefusesWhatCatalogsAndPlansForbid(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env)
	ctx, c := context.Background(), env.Client
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "postgres",
			Versions: []v1alpha1.CatalogVersion{
				{Version: "13", Image: "pg:13", Sundown: day(-10)},
				{Version: "15", Image: "pg:15", Sundown: day(400), Upgrades: []v1alpha1.UpgradePath{
					{To: "15.9", Method: v1alpha1.UpgradeInPlace}, {To: "17", Method: v1alpha1.UpgradeBlueGreen}}},
				{Version: "15.9", Image: "pg:15.9"},
				{Version: "17", Image: "pg:17", Default: true},
				{Version: "18", Image: "pg:18", Sunrise: day(30)},
			}}},
		&v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Spec: v1alpha1.ServicePlanSpec{Engine: "postgres",
			Replicas: ptr.To[int32](1), StorageSize: q("1Gi"), AllowedTransitions: []string{"large"},
			Limits: &v1alpha1.PlanLimits{MaxReplicas: ptr.To[int32](3)}}},
		&v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "large"}, Spec: v1alpha1.ServicePlanSpec{Engine: "postgres",
			Replicas: ptr.To[int32](3), StorageSize: q("10Gi")}},
		&v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "queues"}, Spec: v1alpha1.ServicePlanSpec{Engine: "rabbitmq"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	si := func(name, version, plan string) *v1alpha1.ServiceInstance {
		return &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: version, Plan: plan}}
	}
	refused := func(what string, err error, want ...string) {
		t.Helper()
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: got %v, want the API server to refuse it as invalid", what, err)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the refusal\n  %v\ndoes not say %q", what, err, w)
			}
		}
	}

	// New instances: only versions inside their support window.
	refused("a sundown version", c.Create(ctx, si("old", "13", "")),
		`spec.version: Invalid value: "13": version 13 reached its sundown on `+day(-10).Format(time.DateOnly),
		"versions offered now: 15, 15.9, 17")
	refused("a version before its sunrise", c.Create(ctx, si("early", "18", "")), "version 18 is offered from "+day(30).Format(time.DateOnly))
	refused("a version not in the catalog", c.Create(ctx, si("odd", "16", "")), "supported versions: 13, 15, 15.9, 17, 18")
	refused("an engine without a catalog", c.Create(ctx, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "m"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "mongodb"}}), `no VersionCatalog named "mongodb" exists`)
	refused("a plan of another engine", c.Create(ctx, si("q", "15", "queues")), "ServicePlan queues is for rabbitmq instances, not postgres")
	refused("a plan that does not exist", c.Create(ctx, si("q", "15", "huge")), `spec.plan: Not found: "huge"`)
	over := si("over", "15", "small")
	over.Spec.Replicas, over.Spec.Storage = ptr.To[int32](4), &v1alpha1.StorageSpec{Size: *q("2Gi")}
	refused("sizes beyond the plan's limits", c.Create(ctx, over),
		"spec.replicas: Invalid value: 4: plan small allows at most 3 replicas", "plan small allows at most 1Gi per replica")

	db := si("db", "15", "small")
	if err := c.Create(ctx, db); err != nil {
		t.Fatalf("an instance on a supported version and plan: %v", err)
	}
	// The version the instance runs is what status says (the reconciler is not running here).
	db.Status.Version = "15"
	if err := c.Status().Update(ctx, db); err != nil {
		t.Fatal(err)
	}
	change := func(mutate func(*v1alpha1.ServiceInstance)) error {
		cur := &v1alpha1.ServiceInstance{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(db), cur); err != nil {
			t.Fatal(err)
		}
		mutate(cur)
		return c.Update(ctx, cur)
	}
	refused("a blue/green-only upgrade in place", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "17" }),
		"15 -> 17 cannot be done in place", `create a Restore with target.newInstance {name: <new instance>, version: "17"}`)
	refused("a version without a path", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "18" }),
		"no upgrade path 15 -> 18; 15 may move in place to: 15.9; blue/green (restore into a new instance) to: 17")
	refused("a downgrade", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "13" }), "15 -> 13 is a downgrade")
	refused("a plan change the plan forbids", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Plan = "tiny" }),
		"spec.plan: Forbidden: plan small does not allow moving to tiny; it may move to: large")
	refused("leaving the plan", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Plan = "" }), "cannot leave its plan small")
	refused("growing beyond the plan", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Replicas = ptr.To[int32](5) }), "allows at most 3 replicas")
	if err := change(func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "15.9" }); err != nil {
		t.Errorf("an in-place path: %v", err)
	}
	if err := change(func(i *v1alpha1.ServiceInstance) { i.Spec.Plan = "large" }); err != nil {
		t.Errorf("a plan change the plan allows: %v", err)
	}
	// large lists no transitions: the way back is closed.
	refused("a plan downgrade", change(func(i *v1alpha1.ServiceInstance) { i.Spec.Plan = "small" }),
		"plan large does not allow moving to small; it may move to: none")

	// A version that passes its sundown after the instance was created does not block other updates.
	cat := &v1alpha1.VersionCatalog{}
	if err := c.Get(ctx, client.ObjectKey{Name: "postgres"}, cat); err != nil {
		t.Fatal(err)
	}
	cat.Spec.Versions[2].Sundown = day(-1)
	if err := c.Update(ctx, cat); err != nil {
		t.Fatal(err)
	}
	if err := change(func(i *v1alpha1.ServiceInstance) { i.Labels = map[string]string{"team": "ledger"} }); err != nil {
		t.Errorf("a label on an instance whose version is past its sundown: %v", err)
	}
}

// The operator's own certificate: a second pass writes nothing, and a lost caBundle comes back.
func TestWebhookCertificateIsKept(t *testing.T) {
	env := testenv.Start(t)
	certs_ := startWebhook(t, env)
	ctx := context.Background()
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: opNamespace, Name: certs.ServerSecretName("datafleet-webhook")}
	if err := env.Client.Get(ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	if owners := secret.OwnerReferences; len(owners) != 1 || owners[0].Kind != "ValidatingWebhookConfiguration" {
		t.Errorf("the certificate Secret's owners are %v: uninstalling the chart would leave it behind", owners)
	}
	rv := secret.ResourceVersion
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "datafleet"}, vwc); err != nil {
		t.Fatal(err)
	}
	vwcRV := vwc.ResourceVersion
	if _, err := certs_.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	// A second replica serves the same certificate.
	other := *certs_
	other.Dir = t.TempDir()
	if err := other.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		a, _ := os.ReadFile(filepath.Join(certs_.Dir, f))
		b, _ := os.ReadFile(filepath.Join(other.Dir, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("the two replicas' %s differ", f)
		}
	}
	_ = env.Client.Get(ctx, key, secret)
	_ = env.Client.Get(ctx, client.ObjectKey{Name: "datafleet"}, vwc)
	if secret.ResourceVersion != rv || vwc.ResourceVersion != vwcRV {
		t.Error("a second Ensure of a current certificate wrote to the API server")
	}
	// An upgrade of the chart that dropped the caBundle: the next pass puts it back, and the API
	// server trusts the webhook again.
	vwc.Webhooks[0].ClientConfig.CABundle = nil
	if err := env.Client.Update(ctx, vwc); err != nil {
		t.Fatal(err)
	}
	if _, err := certs_.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Create(ctx, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: opNamespace, Name: "x"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres"}})
	if err == nil || !strings.Contains(err.Error(), `no VersionCatalog named "postgres" exists`) {
		t.Errorf("after the caBundle came back, the webhook answered %v", err)
	}
}

// The engine's own checks (its parameter allow-list) run at admission: a bad parameter is refused
// by the API server, on create and on update, and an unrelated update of an instance is not held
// up by them.
// fakeEngineWebhook starts an API server with the webhook and a catalog for the fake engine, and
// returns a client of it.
func fakeEngineWebhook(t *testing.T) client.Client {
	t.Helper()
	env := testenv.Start(t)
	startWebhook(t, env)
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: fakeengine.Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: fakeengine.Name,
		Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "fake:1", Default: true}}}}
	if err := env.Client.Create(context.Background(), cat); err != nil {
		t.Fatal(err)
	}
	return env.Client
}

func TestWebhookRunsTheEnginesChecks(t *testing.T) {
	ctx, c := context.Background(), fakeEngineWebhook(t)
	si := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: opNamespace, Name: "db"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Parameters: map[string]string{"port": "1", "max_connections": "lots"}}}
	err := c.Create(ctx, si)
	for _, want := range []string{`spec.parameters[port]: Forbidden`, `spec.parameters[max_connections]: Invalid value: "lots"`} {
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("bad parameters: the refusal %v does not say %s", err, want)
		}
	}
	// The maintenance window: its duration by the CRD's CEL, its time zone by the webhook.
	si.Spec.Parameters = map[string]string{"max_connections": "100"}
	si.Spec.MaintenanceWindow = &v1alpha1.MaintenanceWindow{StartTime: "02:00", Duration: metav1.Duration{Duration: 5 * time.Minute}}
	if err := c.Create(ctx, si); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "duration must be between 30m and 24h") {
		t.Errorf("a 5m maintenance window: %v", err)
	}
	si.Spec.MaintenanceWindow = &v1alpha1.MaintenanceWindow{StartTime: "02:00", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"}
	if err := c.Create(ctx, si); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.maintenanceWindow: Invalid value`) ||
		!strings.Contains(err.Error(), `timeZone "Mars/Olympus"`) {
		t.Errorf("a maintenance window in an unknown time zone: %v", err)
	}
	si.Spec.MaintenanceWindow.TimeZone = "Europe/Berlin"
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	si.Spec.Parameters["mode"] = "c"
	if err := c.Update(ctx, si); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.parameters[mode]") {
		t.Errorf("a bad parameter on update: %v", err)
	}
}

// An instance's PriorityClass must exist and must not be one of Kubernetes' own (the CRD's CEL):
// a data pod that is node-critical would be the last thing evicted under pressure, and could
// preempt the components the node needs. An instance whose class was deleted since still takes
// updates that leave it alone.
func TestWebhookRefusesPriorityClassesThatCannotBeUsed(t *testing.T) {
	ctx, c := context.Background(), fakeEngineWebhook(t)
	si := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: opNamespace, Name: "db"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, Scheduling: &v1alpha1.SchedulingSpec{PriorityClassName: "system-node-critical"}}}
	if err := c.Create(ctx, si); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "the system- priority classes are for Kubernetes' own components") {
		t.Errorf("system-node-critical: %v", err)
	}
	si.Spec.Scheduling.PriorityClassName = "data"
	if err := c.Create(ctx, si); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), `spec.scheduling.priorityClassName: Not found: "PriorityClass \"data\" (the platform team creates the classes data pods may use)"`) {
		t.Errorf("a class that does not exist: %v", err)
	}
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Value: 1000}
	if err := c.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, si); err != nil {
		t.Fatalf("with the class there: %v", err)
	}
	if err := c.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	si.Spec.Parameters = map[string]string{"max_connections": "100"}
	if err := c.Update(ctx, si); err != nil {
		t.Errorf("an update that leaves the deleted class alone: %v", err)
	}
	si.Spec.Scheduling.PriorityClassName = "data-2"
	if err := c.Update(ctx, si); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `PriorityClass \"data-2\"`) {
		t.Errorf("moving to a class that does not exist: %v", err)
	}
}

// A BackupPlan whose schedule never fires (a day the month does not have) or whose time zone is
// unknown is refused at admission, naming the field; the CRD's CEL only counts the fields. A plan
// admitted before keeps taking updates that leave its schedule alone.
func TestWebhookRefusesSchedulesThatNeverFire(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	plan := func(name, schedule, zone, drill string) *v1alpha1.BackupPlan {
		p := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "db"}, Schedule: schedule, TimeZone: zone}}
		if drill != "" {
			p.Spec.Drill = &v1alpha1.BackupDrill{Schedule: drill}
		}
		return p
	}
	for _, k := range []struct {
		plan *v1alpha1.BackupPlan
		want string
	}{
		{plan("feb30", "0 0 30 2 *", "", ""), `spec.schedule: Invalid value: "0 0 30 2 *": schedule "0 0 30 2 *" never fires`},
		{plan("apr31", "0 3 31 4 *", "Europe/Paris", ""), `spec.schedule: Invalid value: "0 3 31 4 *"`},
		{plan("mars", "0 3 * * *", "Mars/Olympus", ""), `spec.timeZone: Invalid value: "Mars/Olympus": not an IANA time zone`},
		{plan("drill", "0 3 * * *", "", "0 4 31 11 *"), `spec.drill.schedule: Invalid value: "0 4 31 11 *"`},
	} {
		if err := c.Create(ctx, k.plan); err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("plan %s: %v, want %q", k.plan.Name, err, k.want)
		}
	}
	ok := plan("nightly", "0 3 29 2 *", "Europe/Paris", "0 4 * * 0")
	if err := c.Create(ctx, ok); err != nil {
		t.Fatalf("29 February, in Paris: %v", err)
	}
	ok.Spec.Suspend = true
	if err := c.Update(ctx, ok); err != nil {
		t.Fatal(err)
	}
	ok.Spec.Schedule = "0 3 30 2 *"
	if err := c.Update(ctx, ok); err == nil || !strings.Contains(err.Error(), "never fires") {
		t.Errorf("changing the schedule to 30 February: %v", err)
	}
}

// A BackupStore the platform's policy does not allow is refused at admission, naming the setting:
// one without credentials (the operator's own cloud identity), one whose endpoint is not on the
// list, one that imports backups into a namespace not listed. One within the policy is admitted.
func TestWebhookRefusesStoresThePolicyDoesNotAllow(t *testing.T) {
	env := testenv.Start(t)
	startWebhook(t, env)
	ctx, c := context.Background(), env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}); err != nil {
		t.Fatal(err)
	}
	creds := &v1alpha1.LocalObjectReference{Name: "s3"}
	minio := "s3://bucket?endpoint=http://minio.apps.svc:9000&use_path_style=true"
	for _, k := range []struct {
		name, url string
		creds     *v1alpha1.LocalObjectReference
		imports   bool
		want      string // "" admits
	}{
		{"ambient", "s3://bucket?region=eu-west-1", nil, false, "spec.url: Forbidden: s3:// stores without a credentials Secret use the operator's own cloud identity"},
		{"inside", "s3://bucket?endpoint=http://kube-apiserver.kube-system.svc:443", creds, false, "backupStores.allowedEndpoints"},
		{"importing", minio, creds, true, `spec.importBackups: Forbidden: importing backups into namespace "apps" is not allowed`},
		{"minio", minio, creds, false, ""},
	} {
		err := c.Create(ctx, &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: "apps"},
			Spec: v1alpha1.BackupStoreSpec{URL: k.url, CredentialsSecretRef: k.creds, ImportBackups: k.imports}})
		if k.want == "" && err != nil || k.want != "" && (err == nil || !strings.Contains(err.Error(), k.want)) {
			t.Errorf("store %s: %v, want %q", k.name, err, k.want)
		}
	}
	// Nor turned on later.
	bs := &v1alpha1.BackupStore{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "minio"}, bs); err != nil {
		t.Fatal(err)
	}
	bs.Spec.ImportBackups = true
	if err := c.Update(ctx, bs); err == nil || !strings.Contains(err.Error(), "backupStores.importNamespaces") {
		t.Errorf("importBackups turned on in a namespace not listed: %v", err)
	}
}

// tls.required needs tls.enabled (the CRD's CEL), and on an existing instance it waits until the
// instance is Ready with TLS (the webhook): replicas would otherwise restart verifying a
// certificate the primary does not serve yet.
func TestWebhookTurnsTLSRequiredOnOnlyOverTLS(t *testing.T) {
	ctx, c := context.Background(), fakeEngineWebhook(t)
	si := func(name string, tls v1alpha1.TLSSpec) *v1alpha1.ServiceInstance {
		return &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: opNamespace, Name: name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: fakeengine.Name, TLS: &tls}}
	}
	if err := c.Create(ctx, si("clear", v1alpha1.TLSSpec{Required: true})); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "tls.required needs tls.enabled") {
		t.Errorf("required without enabled: %v", err)
	}
	if err := c.Create(ctx, si("new", v1alpha1.TLSSpec{Enabled: true, Required: true})); err != nil {
		t.Errorf("a new instance with TLS enabled and required: %v", err)
	}
	db := si("db", v1alpha1.TLSSpec{Enabled: true})
	if err := c.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	require := func() error {
		cur := &v1alpha1.ServiceInstance{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(db), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.TLS.Required = true
		return c.Update(ctx, cur)
	}
	if err := require(); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.tls.required: Forbidden: turn on spec.tls.enabled first") {
		t.Errorf("required before the instance serves TLS: %v", err)
	}
	// The reconciler (not running here) reports the instance Ready with its certificate.
	cur := &v1alpha1.ServiceInstance{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(db), cur); err != nil {
		t.Fatal(err)
	}
	cur.Status = v1alpha1.ServiceInstanceStatus{Phase: v1alpha1.PhaseReady, ObservedGeneration: cur.Generation,
		TLS: &v1alpha1.InstanceTLSStatus{CAConfigMap: "db-ca"}}
	if err := c.Status().Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := require(); err != nil {
		t.Errorf("required once the instance is Ready with TLS: %v", err)
	}
}
