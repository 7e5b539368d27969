//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

const leaseName = "manager.datafleet.dev"

var apiextensionsCRD = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// TestOperator installs the chart, checks the operator works, and uninstalls it. The steps depend on
// each other, so they run in order and stop at the first failure.
func TestOperator(t *testing.T) {
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"no other Datafleet operator is installed", testNoOtherOperator},
		{"install: the operator becomes ready and leads", testInstall},
		{"the CRDs are served with their validation", testCRDsServed},
		{"namespace editors and viewers get Datafleet's kinds through Kubernetes' own roles, and servicebinding.io runtimes read bindings", testTenantRoles},
		{"an instance of an engine that is not enabled gets a clear condition", testEngineNotEnabled},
		{"a postgres instance becomes Ready and keeps its data when its pod is replaced", testPostgresSingleInstance},
		{"a 3-pod postgres instance under a disruption budget fails over, rejoins, switches over and rolls without losing a row", testPostgresHighAvailability},
		{"a postgres scale-down that removes the primary's pod switches over first and keeps every write", testPostgresScaleDown},
		{"on three nodes a postgres instance spreads, survives the loss of its primary's node without losing a confirmed row (the old primary refuses writes when it comes back), and its disruption budget holds a drain", testNodes},
		{"a 3-node rabbitmq instance forms one cluster under a disruption budget, grows its volumes online, keeps confirmed messages, rolls one node at a time, refuses a scale-down and drains on request", testRabbitMQCluster},
		{"bindings give applications of instances that run Guaranteed their own users and Secrets, in the instance's namespace and in another its policy allows, rotate with overlap, and are never orphaned", testBindings},
		{"backups to MinIO restore postgres and rabbitmq into new and the same instances, refuse a corrupted artefact, and both engines' plans keep their retention and pass drills", testBackups},
		{"the webhook refuses sundown versions and forbidden plan moves, warns before a sundown, postgres 15 upgrades to 17 blue/green with every row, and rabbitmq 3.10 to 4.0 with its definitions while its messages stay", testUpgrades},
		{"a mongodb instance (the local FerretDB image) becomes Ready, serves a binding that rotates and one from another namespace, runs Guaranteed where its scheduling says, grows its volume online, keeps its documents across a pod replacement, restores a backup into a new instance, and its plan prunes by age and passes drills", testMongoDB},
		{"a real Prometheus scrapes every engine's agents and the operator: every documented metric, a replica's lag, the alert rules and every dashboard panel", testObservability},
		{"an operator rollback and upgrade across one release restart no database process: every engine's agents are replaced in place, helm upgrade alone brings this release's CRDs, and the previous release's objects survive them", testOperatorUpgrade},
		{"a catalog image patch restarts six instances in waves (a canary, then at most two at once) and not a paused one", testRolloutWaves},
		{"the getting-started guide runs as written: an instance, a binding, a backup and its restore, a blue/green upgrade, the fleet's status", testGettingStarted},
		{"uninstall leaves no operator object behind", testUninstall},
	} {
		if !t.Run(step.name, step.fn) {
			env.dump(t)
			t.FailNow()
		}
	}
}

func testNoOtherOperator(t *testing.T) {
	var deps appsv1.DeploymentList
	if err := env.c.List(context.Background(), &deps, client.MatchingLabels{"app.kubernetes.io/name": "datafleet"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		if d.Labels["app.kubernetes.io/instance"] != releaseName {
			t.Fatalf("another Datafleet operator runs in this cluster (%s/%s) and would reconcile the test's objects too: "+
				"uninstall it (helm uninstall -n %s %s) or run `make cluster-down` first",
				d.Namespace, d.Name, d.Namespace, d.Labels["app.kubernetes.io/instance"])
		}
	}
}

func testInstall(t *testing.T) {
	repo, tag := env.image("operator")
	// The API server's Pod Security admission rejects a manager pod that is not restricted.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace, Labels: restricted}}
	if err := env.c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	upgradeCRDs(t)
	env.runHelm(t, "upgrade", "--install", releaseName, filepath.Join(env.root, "charts", "datafleet"),
		"--namespace", releaseNamespace, "--wait", "--timeout", "3m",
		"--set", "image.repository="+repo, "--set-string", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		// The backup tests' stores are MinIO in their own namespaces.
		"--set", "backupStores.allowedEndpoints={minio.*.svc:9000}",
		// The namespace whose store imports the backups its lost Backups stood for (checkBackupsMove).
		"--set", "backupStores.importNamespaces={"+movingNamespace+"}",
		// A CA rotation's two steps take two minutes each here (checkCARotation), fourteen days by default.
		"--set", "tls.caRotationOverlap=4m",
		// The e2e's Prometheus (testObservability), which the instances' NetworkPolicies admit.
		"--set", "metrics.agents.scraper.namespace="+monitoringNamespace, "--set", "metrics.agents.scraper.labels.app="+scraperLabels["app"])

	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		var d appsv1.Deployment
		if err := env.c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: releaseName}, &d); err != nil {
			return expect(false, "the manager Deployment is available", err.Error())
		}
		return expect(d.Status.AvailableReplicas == 1 && d.Status.UpdatedReplicas == 1, "the manager Deployment is available", fmt.Sprintf("status %+v", d.Status))
	})
	// Holding the Lease shows the manager started its controllers with the chart's RBAC.
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		var l coordinationv1.Lease
		if err := env.c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: leaseName}, &l); err != nil {
			return expect(false, "the manager holds the leader-election Lease", err.Error())
		}
		h := l.Spec.HolderIdentity
		return expect(h != nil && strings.HasPrefix(*h, releaseName+"-"), "the manager holds the leader-election Lease", fmt.Sprintf("holder %v", h))
	})
	// A ready pod is not yet a reachable webhook: the Service's route to it is programmed a moment
	// later ("no route to host" until then). A dry-run create the webhook refuses shows it answers.
	testenv.Eventually(t, waitTimeout, func() error {
		probe := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "webhook-probe", Namespace: releaseNamespace},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "nosuchengine", Version: "1"}}
		err := env.c.Create(context.Background(), probe, client.DryRunAll)
		return expect(apierrors.IsInvalid(err), "the API server reaches the webhook through its Service", fmt.Sprintf("dry-run create: %v", err))
	})
	checkMetricsAuth(t)
}

// upgradeCRDs applies the chart's CRDs before the install: an install runs no upgrade hook and
// Helm installs crds/ only when they are absent, so a cluster kept from an earlier run would
// otherwise serve stale schemas (and silently drop new fields).
func upgradeCRDs(t *testing.T) {
	t.Helper()
	applyCRDs(t, chartCRDs(t))
}

// chartCRDs are this checkout's CRD files, by path.
func chartCRDs(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(env.root, "charts", "datafleet", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in the chart: %v", err)
	}
	crds := map[string][]byte{}
	for _, f := range files {
		if crds[f], err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	return crds
}

// applyCRDs applies CRDs by file name, as `kubectl apply --server-side` does.
func applyCRDs(t *testing.T, crds map[string][]byte) {
	t.Helper()
	for f, b := range crds {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := env.c.Patch(context.Background(), u, client.Apply, client.FieldOwner("datafleet-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("applying %s: %v", f, err)
		}
	}
}

func testCRDsServed(t *testing.T) {
	res, err := env.cs.Discovery().ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range res.APIResources {
		if !strings.Contains(r.Name, "/") {
			kinds = append(kinds, r.Kind)
		}
	}
	for _, want := range []string{"ServiceInstance", "ServiceBinding", "Backup", "BackupPlan", "Restore",
		"BackupStore", "VersionCatalog", "ServicePlan"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("kind %s is not served; served: %v", want, kinds)
		}
	}
	// The schema's CEL rules run in the real API server.
	ns := testNamespace(t, "crds")
	bad := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Replicas: ptr(int32(0))}}
	err = env.c.Create(context.Background(), bad)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas") {
		t.Fatalf("creating an instance with 0 replicas: want an Invalid error about spec.replicas, got %v", err)
	}
}

func testEngineNotEnabled(t *testing.T) {
	ns := testNamespace(t, "unknown-engine")
	ctx := context.Background()
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "cassandra", Version: "5.0"}}
	// Without a catalog the webhook refuses the instance outright; with one, the operator takes it
	// and says its engine is not enabled.
	if err := env.c.Create(ctx, inst); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `no VersionCatalog named "cassandra" exists`) {
		t.Fatalf("an instance of an engine without a catalog: want the webhook to refuse it, got %v", err)
	}
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "cassandra"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "cassandra",
		Versions: []v1alpha1.CatalogVersion{{Version: "5.0", Image: "cassandra:5.0"}}}}
	if err := env.c.Create(ctx, cat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), cat) })
	if err := env.c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return expect(false, "the instance reports that its engine is not enabled", err.Error())
		}
		c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil {
			return expect(false, "the instance reports that its engine is not enabled", "no Ready condition yet")
		}
		return expect(inst.Status.Phase == v1alpha1.PhaseFailed && c.Status == metav1.ConditionFalse &&
			c.Reason == "UnknownEngine" && strings.Contains(c.Message, `engine "cassandra" is not known to this operator; known engines: mongodb, postgres, rabbitmq`) && c.ObservedGeneration == inst.Generation,
			"the instance reports that its engine is not enabled",
			fmt.Sprintf("phase %s, Ready=%s %s: %s", inst.Status.Phase, c.Status, c.Reason, c.Message))
	})
	// Without an engine controller the instance got no finalizer, so it deletes at once.
	if err := env.c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the instance is gone", inst)
}

func testUninstall(t *testing.T) {
	env.runHelm(t, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "3m")
	ctx := context.Background()
	byRelease := client.MatchingLabels{"app.kubernetes.io/instance": releaseName}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		var left []string
		namespaced := []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.PodList{},
			&corev1.ServiceList{}, &corev1.ServiceAccountList{}, &corev1.SecretList{}, &corev1.ConfigMapList{},
			&rbacv1.RoleList{}, &rbacv1.RoleBindingList{}, &coordinationv1.LeaseList{}}
		for _, l := range namespaced {
			if err := env.c.List(ctx, l, client.InNamespace(releaseNamespace)); err != nil {
				return expect(false, "no operator object is left", err.Error())
			}
			for _, o := range items(l) {
				if !createdByKubernetes(o) {
					left = append(left, fmt.Sprintf("%T %s", o, o.GetName()))
				}
			}
		}
		for _, l := range []client.ObjectList{&rbacv1.ClusterRoleList{}, &rbacv1.ClusterRoleBindingList{},
			&admissionregistrationv1.ValidatingWebhookConfigurationList{}} {
			if err := env.c.List(ctx, l, byRelease); err != nil {
				return expect(false, "no operator object is left", err.Error())
			}
			for _, o := range items(l) {
				left = append(left, fmt.Sprintf("%T %s", o, o.GetName()))
			}
		}
		return expect(len(left) == 0, "no operator object is left", strings.Join(left, ", "))
	})
	// CRDs stay, as Helm keeps every chart's crds/ on uninstall: deleting them would delete every
	// instance of every user. docs/install.md says how to remove them on purpose.
	var crd metav1.PartialObjectMetadata
	crd.SetGroupVersionKind(apiextensionsCRD)
	if err := env.c.Get(ctx, client.ObjectKey{Name: "serviceinstances.datafleet.dev"}, &crd); err != nil {
		t.Errorf("the ServiceInstance CRD should survive helm uninstall: %v", err)
	}
	// The chart keeps its VersionCatalogs, like its CRDs: instances depend on them.
	for _, name := range []string{"postgres", "rabbitmq"} {
		cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(cat), cat); err != nil {
			t.Errorf("the %s VersionCatalog should survive helm uninstall: %v", name, err)
		} else if err := env.c.Delete(ctx, cat); err != nil {
			t.Error(err)
		}
	}
	if err := env.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace}}); err != nil {
		t.Fatal(err)
	}
}

// createdByKubernetes tells the objects every namespace has from those the chart or operator made.
func createdByKubernetes(o client.Object) bool {
	switch o.(type) {
	case *corev1.ServiceAccount:
		return o.GetName() == "default"
	case *corev1.ConfigMap:
		return o.GetName() == "kube-root-ca.crt"
	}
	return false
}

func items(l client.ObjectList) []client.Object {
	var out []client.Object
	_ = meta.EachListItem(l, func(o runtime.Object) error {
		out = append(out, o.(client.Object))
		return nil
	})
	return out
}
