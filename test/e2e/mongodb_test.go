//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// testMongoDB runs the MongoDB engine on the local FerretDB image (no mongod can run on these
// machines): one member, a binding an application writes and reads through (and one from another
// namespace the instance's policy allows), a backup restored into a new instance whose binding
// reads the same documents, and a plan whose retention by age prunes and whose drill passes.
func testMongoDB(t *testing.T) {
	ctx := context.Background()
	// Two catalog versions on the one FerretDB image here, with a blue/green path between them:
	// the move's mechanism is proven (the path, the version of the new instance, the documents),
	// not a change of server.
	ensureCatalog(t, "mongodb",
		v1alpha1.CatalogVersion{Version: "ferretdb-1.24", Image: env.images["ferretdb-1.24"], Default: true,
			Upgrades: []v1alpha1.UpgradePath{{To: "ferretdb-1.24-next", Method: v1alpha1.UpgradeBlueGreen}}},
		v1alpha1.CatalogVersion{Version: "ferretdb-1.24-next", Image: env.images["ferretdb-1.24"]})
	ns := testNamespace(t, "mongodb")
	reader := testNamespace(t, "mongodb-reader")
	s3c := minioStore(t, ns)
	docs := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "mongodb", Version: "ferretdb-1.24", DeletionPolicy: v1alpha1.DeletionPolicyDelete,
			Storage:       &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			Backup:        &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}},
			BindingPolicy: &v1alpha1.BindingPolicy{AllowedNamespaces: []string{reader}}}}
	createInstance(t, docs)
	waitInstanceReady(t, docs)
	t.Cleanup(func() { deleteBackups(t, ns) })
	// The plan runs while the rest of the step does: every minute, retention by age, a drill
	// every other minute into a scratch instance.
	plan, seen := startPlan(t, docs, "docs-every-minute", &v1alpha1.BackupRetention{MaxAge: &metav1.Duration{Duration: 90 * time.Second}}, "*/2 * * * *")
	if docs.Status.CurrentPrimary != "docs-0" {
		t.Errorf("currentPrimary %q, want docs-0", docs.Status.CurrentPrimary)
	}
	pod := &corev1.Pod{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "docs-0"}, pod); err != nil || pod.Labels["datafleet.dev/role"] != "primary" {
		t.Errorf("docs-0 role label %q (%v), want primary: the client Service selects it", pod.Labels["datafleet.dev/role"], err)
	}
	checkAPIToken(t, pod, false)
	// One member gets no disruption budget (one allowing no disruption would block every drain);
	// the framework's budget for several members is proven on PostgreSQL and RabbitMQ pods.
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(docs), &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("the one-member instance's disruption budget: %v, want none", err)
	}
	t.Logf("MONGODB: docs is Ready on %s, primary %s", docs.Status.Version, docs.Status.CurrentPrimary)

	secret := waitBound(t, createBinding(t, ns, "docs-app", "docs", v1alpha1.RoleReadWrite, "notes"), nil)
	uri := string(secret.Data["uri"])
	if want := "@docs." + ns + ".svc:27017/notes?authSource=notes"; string(secret.Data["type"]) != "mongodb" ||
		!strings.HasPrefix(uri, "mongodb://") || !strings.HasSuffix(uri, want) {
		t.Errorf("binding Secret: type %q, uri ending %q; want type mongodb and a uri ending %q", secret.Data["type"],
			uri[strings.LastIndex(uri, "@"):], want)
	}
	out := runBinding(t, ns, "docs-write", "docs-app", corev1.PodSucceeded, "write", "docs-app", "hello-from-docs")
	if !strings.Contains(out, "read: hello-from-docs") {
		t.Fatalf("writing through the binding: %s", out)
	}
	runBinding(t, ns, "docs-write-2", "docs-app", corev1.PodSucceeded, "write", "docs-app", "second-note")
	t.Logf("MONGODB: a pod wrote and read documents through its binding")

	// A resources and scheduling change replaces the pod (the supervisor's rolling update); the
	// documents are on the volume and stay. Requests equal to limits make the pod Guaranteed.
	before := &corev1.Pod{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "docs-0"}, before); err != nil {
		t.Fatal(err)
	}
	class := "datafleet-e2e-data"
	dataPriorityClass(t, class, 100000)
	placement := dataScheduling(class)
	patchInstance(t, docs, func(s *v1alpha1.ServiceInstanceSpec) {
		guaranteed := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
		s.Resources = corev1.ResourceRequirements{Requests: guaranteed, Limits: guaranteed}
		s.Scheduling = placement
	})
	waitPodReplaced(t, before)
	waitInstanceReady(t, docs)
	checkPlacement(t, ns, "docs-0", placement, 100000)
	out = runBinding(t, ns, "docs-read", "docs-app", corev1.PodSucceeded, "read", "docs-app")
	if !strings.Contains(out, "read: hello-from-docs,second-note") {
		t.Fatalf("reading after the pod was replaced: %s", out)
	}
	t.Logf("MONGODB: a resources and scheduling change replaced the pod (Guaranteed, priority class %s) and every document stayed", class)

	// Storage expansion: the volume grows online, the pod is not replaced, the documents stay.
	expandStorage(t, docs, "2Gi")
	out = runBinding(t, ns, "docs-read-2", "docs-app", corev1.PodSucceeded, "read", "docs-app")
	if !strings.Contains(out, "read: hello-from-docs,second-note") {
		t.Fatalf("reading after the volume grew: %s", out)
	}
	t.Logf("MONGODB: the volume grew to 2Gi under the running pod and every document stayed")

	// Rotation: both users log in during the overlap, only the new one after it.
	addr := serviceAddress(t, ns, "docs", 27017)
	b := &v1alpha1.ServiceBinding{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "docs-app"}, b); err != nil {
		t.Fatal(err)
	}
	login := func(s *corev1.Secret) error { return mongoLogin(addr, s) }
	secret = checkRotation(t, b, secret, 20*time.Second, login)
	t.Logf("MONGODB: rotation: both users logged in during the overlap, only the new one after")

	// Another namespace the instance's policy allows binds to a database named after it, from its own pods.
	bindFromNamespace(t, reader, docs, "notes-reader")
	t.Logf("MONGODB: a pod of namespace %s wrote and read documents through its binding to database %s", reader, reader)

	backupOf(t, ns, "docs-backup", "docs")
	// The restore into a new instance is the catalog's blue/green move to the next version.
	restoreOf(t, ns, "docs-clone", "docs-backup", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "docs-copy", Version: "ferretdb-1.24-next"}}, "Completed")
	cp := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "docs-copy", Namespace: ns}}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), cp) })
	waitInstanceReady(t, cp)
	if cp.Status.Version != "ferretdb-1.24-next" {
		t.Errorf("the restored instance runs %q, want ferretdb-1.24-next", cp.Status.Version)
	}
	waitBound(t, createBinding(t, ns, "copy-app", "docs-copy", v1alpha1.RoleReadOnly, "notes"), nil)
	out = runBinding(t, ns, "copy-read", "copy-app", corev1.PodSucceeded, "read", "copy-app")
	if !strings.Contains(out, "read: hello-from-docs,second-note") {
		t.Fatalf("reading the restored instance through its binding: %s", out)
	}
	t.Logf("MONGODB: the backup restored into docs-copy, on the catalog's next version, with every document")

	// Deleting the binding drops its user and its Secret.
	checkDeletion(t, b, secret, login)
	t.Logf("MONGODB: the deleted binding's user could no longer log in and its Secret was gone")

	checkPlan(t, s3c, "", plan, seen, 3)
}

// mongoLogin logs in with the Secret's credentials at addr (the Service's ClusterIP) and runs a
// command that needs a login.
func mongoLogin(addr string, s *corev1.Secret) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + addr + "/?directConnection=true").SetServerSelectionTimeout(10 * time.Second).
		SetAuth(options.Credential{AuthSource: string(s.Data["database"]), Username: string(s.Data["username"]), Password: string(s.Data["password"])}))
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	_, err = c.Database(string(s.Data["database"])).ListCollectionNames(ctx, bson.D{})
	return err
}
