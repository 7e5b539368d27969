//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testBindings: applications in pods reach PostgreSQL and RabbitMQ (both QoS Guaranteed, placed
// by their spec.scheduling) with nothing but their binding's Secret, mounted the
// servicebinding.io way, from the instances' namespace and from another their policy allows;
// readOnly is refused writes; a rotation keeps both passwords working for its overlap and then
// only the new one; a deleted binding's login fails; and after the operator is killed at random
// moments while 20 bindings are created and deleted, PostgreSQL's binding users are exactly those
// of the bindings that exist.
func testBindings(t *testing.T) {
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "17", Image: env.images["postgres-17"], Default: true})
	ensureCatalog(t, "rabbitmq", v1alpha1.CatalogVersion{Version: "4.0", Image: env.images["rabbitmq-4.0"], Default: true})
	ns := testNamespace(t, "bindings")
	// The applications of another namespace may bind to both instances (checkCrossNamespaceBindings).
	consumer := testNamespace(t, "consumer")
	policy := &v1alpha1.BindingPolicy{AllowedNamespaces: []string{consumer}}
	// Both run QoS Guaranteed (requests equal to limits) where their scheduling says.
	class := "datafleet-e2e-bindings"
	dataPriorityClass(t, class, 100000)
	guaranteed := func(memory string) corev1.ResourceRequirements {
		l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse(memory)}
		return corev1.ResourceRequirements{Requests: l, Limits: l}
	}
	db := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete, BindingPolicy: policy, Resources: guaranteed("256Mi"), Scheduling: dataScheduling(class)}}
	mq := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "mq", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", DeletionPolicy: v1alpha1.DeletionPolicyDelete, BindingPolicy: policy,
			Resources: guaranteed("512Mi"), Scheduling: dataScheduling(class)}}
	createInstance(t, db)
	createInstance(t, mq)
	waitInstanceReady(t, db)
	waitInstanceReady(t, mq)
	checkPlacement(t, ns, "db-0", db.Spec.Scheduling, 100000)
	checkPlacement(t, ns, "mq-0", mq.Spec.Scheduling, 100000)
	t.Logf("BINDINGS: db-0 and mq-0 run QoS Guaranteed with priority class %s, node selector and toleration", class)

	bindings := map[string]*v1alpha1.ServiceBinding{}
	for _, b := range []struct {
		name, instance string
		role           v1alpha1.BindingRole
	}{{"db-app", "db", v1alpha1.RoleReadWrite}, {"db-report", "db", v1alpha1.RoleReadOnly},
		{"mq-app", "mq", v1alpha1.RoleReadWrite}, {"mq-report", "mq", v1alpha1.RoleReadOnly}} {
		bindings[b.name] = createBinding(t, ns, b.name, b.instance, b.role, "")
	}
	secrets := map[string]*corev1.Secret{}
	for name, b := range bindings {
		secrets[name] = waitBound(t, b, nil)
	}
	t.Logf("BINDINGS: 4 bindings Ready")

	// The application's side: each pod mounts one binding under $SERVICE_BINDING_ROOT.
	run := func(pod, name string, want corev1.PodPhase, args ...string) string {
		return runBinding(t, ns, pod, name, want, args...)
	}
	for _, kind := range []string{"db", "mq"} {
		out := run(kind+"-write", kind+"-app", corev1.PodSucceeded, "write", kind+"-app", "hello-from-"+kind)
		if !strings.Contains(out, "read: hello-from-"+kind) {
			t.Fatalf("%s readWrite: %s", kind, out)
		}
		out = run(kind+"-read", kind+"-report", corev1.PodSucceeded, "read", kind+"-report")
		if !strings.Contains(out, "read: hello-from-"+kind) {
			t.Fatalf("%s readOnly read: %s", kind, out)
		}
		out = run(kind+"-refused", kind+"-report", corev1.PodFailed, "write", kind+"-report", "not-allowed")
		if !strings.Contains(out, "permission denied") && !strings.Contains(out, "ACCESS_REFUSED") {
			t.Fatalf("%s readOnly write failed, but not as refused: %s", kind, out)
		}
	}
	t.Logf("BINDINGS: pods wrote and read through readWrite bindings, read through readOnly ones and were refused writes")

	checkNetworkPolicies(t, ns, db, mq)
	t.Logf("NETPOL: the instances' namespace reached their client ports, an unrelated namespace nothing, and no application pod an agent")

	// Rotation of the PostgreSQL binding, from the host through the Service's ClusterIP.
	addr := serviceAddress(t, ns, "db", 5432)
	old := secrets["db-app"]
	checkRotation(t, bindings["db-app"], old, 40*time.Second, func(s *corev1.Secret) error { return pgLogin(addr, s) })
	t.Logf("BINDINGS: rotation: both passwords worked during the overlap, only the new one after")

	checkCrossNamespaceBindings(t, consumer, db, mq)

	// What the binding's namespace can write reaches nothing more: a binding on the maintenance
	// database is refused at admission, and Secrets edited to name the RabbitMQ administrator or
	// the readOnly binding's user are written back. Both users are still whole below: the
	// administrator drops mq-report's user, and db-report's user logs in before its deletion.
	mqAddr := serviceAddress(t, ns, "mq", 5672)
	if err := env.c.Create(context.Background(), &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "db-maintenance", Namespace: ns},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "db"}, Role: v1alpha1.RoleReadOnly, Database: "postgres"}}); err == nil ||
		!strings.Contains(err.Error(), `spec.database: Forbidden: database "postgres" is reserved`) {
		t.Fatalf("a binding on database postgres: %v", err)
	}
	checkSecretEdit(t, bindings["mq-app"], rabbitmq.AdminUser, func(s *corev1.Secret) error { return amqpLogin(mqAddr, s) })
	checkSecretEdit(t, bindings["db-app"], string(secrets["db-report"].Data["username"]), func(s *corev1.Secret) error { return pgLogin(addr, s) })
	if err := pgLogin(addr, secrets["db-report"]); err != nil {
		t.Fatalf("db-report's user after db-app's Secret named it: %v", err)
	}
	t.Logf("BINDINGS: a binding on database postgres was refused at admission; edited Secrets were written back and reached no other user")

	// Deleting a binding drops its user and its Secret.
	for name, login := range map[string]func(*corev1.Secret) error{
		"db-report": func(s *corev1.Secret) error { return pgLogin(addr, s) },
		"mq-report": func(s *corev1.Secret) error { return amqpLogin(mqAddr, s) },
	} {
		checkDeletion(t, bindings[name], secrets[name], login)
	}
	t.Logf("BINDINGS: deleted bindings' users could no longer log in and their Secrets were gone")

	// The other namespace's binding to db has its user too.
	checkOperatorKills(t, ns, names.UserName(names.UserStem(consumer, "orders-db"), 0))
}

// checkSecretEdit edits the binding's Secret, as its namespace can, to name user with a password
// of the namespace's choosing, and waits until the operator has written the binding's own user
// back; that user then logs in with the chosen password, which opens nothing else.
func checkSecretEdit(t *testing.T, b *v1alpha1.ServiceBinding, user string, login func(*corev1.Secret) error) {
	t.Helper()
	ctx, s := context.Background(), &corev1.Secret{}
	var own string
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Status.Binding.Name}, s); err != nil {
			return err
		}
		own = string(s.Data["username"])
		s.Data["username"], s.Data["password"] = []byte(user), []byte("chosen-by-the-tenant")
		return env.c.Update(ctx, s)
	})
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return err
		}
		if got := string(s.Data["username"]); got != own {
			return expect(false, "the Secret names "+own, "it names "+got)
		}
		return login(s)
	})
}

// checkOperatorKills creates 20 bindings and deletes every other one while the operator's pod is
// killed (no grace period) at random moments, then checks PostgreSQL's binding users against the
// bindings (and the users of bindings elsewhere, others).
func checkOperatorKills(t *testing.T, ns string, others ...string) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	kills := 0
	kill := func() {
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		sigkillOperator(t)
		kills++
	}
	var made []*v1alpha1.ServiceBinding
	for i := range 20 {
		made = append(made, createBinding(t, ns, fmt.Sprintf("churn-%02d", i), "db", v1alpha1.RoleReadWrite, "churn"))
		if i == 7 {
			kill()
		}
	}
	kill()
	for i, b := range made {
		if i%2 == 0 {
			if err := env.c.Delete(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if i == 9 {
			kill()
		}
	}
	started := time.Now()
	for i, b := range made {
		if i%2 == 0 {
			waitGone(t, "binding "+b.Name, b)
		} else {
			waitBound(t, b, nil)
		}
	}
	t.Logf("BINDINGS: after %d SIGKILLs of the operator, bindings settled %s after the last change", kills, time.Since(started).Round(time.Second))
	want := append([]string{names.UserName(names.UserStem(ns, "db-app"), 1)}, others...)
	for i := 1; i < len(made); i += 2 {
		want = append(want, names.UserName(names.UserStem(ns, made[i].Name), 0))
	}
	sort.Strings(want)
	got := strings.Fields(psql(t, ns, "db-0", "SELECT rolname FROM pg_roles WHERE starts_with(rolname, '"+names.UserPrefix+"') ORDER BY rolname"))
	if !slices.Equal(got, want) {
		t.Fatalf("PostgreSQL's binding users %q, want one per binding %q", got, want)
	}
	t.Logf("BINDINGS: %d users for %d bindings, none orphaned, none missing", len(got), len(want))
}

// sigkillOperator kills the manager's process with SIGKILL, as a crash or the OOM killer would:
// nothing in flight finishes and the leader-election Lease is not released. (Deleting the pod
// would stop it gracefully.) The local cluster runs on this machine, so the process is found
// through its pod's cgroup; the test waits for the container to restart.
func sigkillOperator(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var pods corev1.PodList
	if err := env.c.List(ctx, &pods, client.InNamespace(releaseNamespace)); err != nil || len(pods.Items) != 1 {
		t.Fatalf("the operator's pods: %v, %d of 1", err, len(pods.Items))
	}
	pod := pods.Items[0]
	restarts := func(p *corev1.Pod) int32 {
		if len(p.Status.ContainerStatuses) == 0 {
			return -1
		}
		return p.Status.ContainerStatuses[0].RestartCount
	}
	before := restarts(&pod)
	killed := 0
	for _, pid := range podPIDs(t, &pod) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.HasPrefix(string(cmdline), "/manager\x00") {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no manager process in the operator's pod %s", pod.Name)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		p := &corev1.Pod{}
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(&pod), p); err != nil {
			return err
		}
		return expect(restarts(p) > before, "the operator's container restarts after SIGKILL", fmt.Sprintf("restarts %d", restarts(p)))
	})
}

// checkRotation rotates binding b (whose Secret was old) to generation 1 with the overlap, and
// checks that both users log in during the overlap and only the new one after. It returns the
// new Secret.
func checkRotation(t *testing.T, b *v1alpha1.ServiceBinding, old *corev1.Secret, overlap time.Duration, login func(*corev1.Secret) error) *corev1.Secret {
	t.Helper()
	patchBinding(t, b, func(s *v1alpha1.ServiceBindingSpec) {
		s.Rotation = &v1alpha1.CredentialRotation{Generation: 1, Overlap: &metav1.Duration{Duration: overlap}}
	})
	fresh := waitBound(t, b, func(b *v1alpha1.ServiceBinding) bool {
		return b.Status.CredentialGeneration == 1 && b.Status.PreviousCredentialsExpire != nil
	})
	for _, s := range []*corev1.Secret{old, fresh} {
		if err := login(s); err != nil {
			t.Fatalf("during the overlap %s cannot log in: %v", s.Data["username"], err)
		}
	}
	waitBound(t, b, func(b *v1alpha1.ServiceBinding) bool { return b.Status.PreviousCredentialsExpire == nil })
	if err := login(old); err == nil {
		t.Fatal("after the overlap the previous credentials still log in")
	}
	if err := login(fresh); err != nil {
		t.Fatal(err)
	}
	return fresh
}

// checkCrossNamespaceBindings: pods of namespace consumer, which the instances' binding policies
// allow, write and read through bindings to a database and a vhost named after their namespace
// (the instances' NetworkPolicies admit them); the RabbitMQ binding's user rotates with an
// overlap; and a binding to the PostgreSQL instance's own database, which is not shared, is
// refused at admission.
func checkCrossNamespaceBindings(t *testing.T, consumer string, db, mq *v1alpha1.ServiceInstance) {
	t.Helper()
	bindFromNamespace(t, consumer, db, "orders-db")
	b, s := bindFromNamespace(t, consumer, mq, "orders-mq")
	t.Logf("BINDINGS: pods of namespace %s wrote and read through bindings to database and vhost %s of the instances in %s", consumer, consumer, db.Namespace)
	mqAddr := serviceAddress(t, mq.Namespace, mq.Name, 5672)
	checkRotation(t, b, s, 30*time.Second, func(s *corev1.Secret) error { return amqpLogin(mqAddr, s) })
	t.Logf("BINDINGS: the other namespace's RabbitMQ user rotated: both passwords worked during the overlap, only the new one after")

	err := env.c.Create(context.Background(), &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "app-db", Namespace: consumer},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: db.Name, Namespace: db.Namespace}, Role: v1alpha1.RoleReadOnly, Database: "app"}})
	if err == nil || !strings.Contains(err.Error(), `database "app" of ServiceInstance `+db.Namespace+`/db is not shared with other namespaces`) {
		t.Fatalf("a binding of namespace %s to database app, which db does not share: %v", consumer, err)
	}
	t.Logf("BINDINGS: a binding of namespace %s to database app, which db does not share, was refused at admission: %v", consumer, err)
}

// bindFromNamespace binds from namespace consumer, readWrite, to the instance's database or vhost
// named after that namespace (what a binding policy lets another namespace have), and checks
// that a pod there writes and reads through it.
func bindFromNamespace(t *testing.T, consumer string, inst *v1alpha1.ServiceInstance, name string) (*v1alpha1.ServiceBinding, *corev1.Secret) {
	t.Helper()
	b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: inst.Name, Namespace: inst.Namespace}, Role: v1alpha1.RoleReadWrite}}
	if inst.Spec.Engine == "rabbitmq" {
		b.Spec.Vhost = consumer
	} else {
		b.Spec.Database = consumer
	}
	if err := env.c.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	s := waitBound(t, b, nil)
	note := "from-" + consumer
	if out := runBinding(t, consumer, name+"-write", name, corev1.PodSucceeded, "write", name, note); !strings.Contains(out, "read: "+note) {
		t.Fatalf("%s: writing through the binding from namespace %s: %s", name, consumer, out)
	}
	return b, s
}

// checkDeletion deletes binding b and checks that its Secret s goes and its user no longer logs in.
func checkDeletion(t *testing.T, b *v1alpha1.ServiceBinding, s *corev1.Secret, login func(*corev1.Secret) error) {
	t.Helper()
	if err := login(s); err != nil {
		t.Fatalf("%s before its deletion: %v", b.Name, err)
	}
	if err := env.c.Delete(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "binding "+b.Name, b)
	waitGone(t, "Secret "+s.Name, s)
	if err := login(s); err == nil {
		t.Fatalf("%s's user still logs in after the binding was deleted", b.Name)
	}
}

// runBinding runs the test application in a pod that mounts the binding Secret name under
// $SERVICE_BINDING_ROOT, as "testapp binding ARGS...", and returns its output.
func runBinding(t *testing.T, ns, pod, name string, want corev1.PodPhase, args ...string) string {
	t.Helper()
	spec := testappPod(append([]string{"binding"}, args...)...)
	spec.Volumes = []corev1.Volume{{Name: "binding", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "binding", MountPath: "/bindings/" + name, ReadOnly: true}}
	spec.Containers[0].Env = []corev1.EnvVar{{Name: "SERVICE_BINDING_ROOT", Value: "/bindings"}}
	return runPodSpec(t, ns, pod, want, spec)
}

func createBinding(t *testing.T, ns, name, instance string, role v1alpha1.BindingRole, database string) *v1alpha1.ServiceBinding {
	t.Helper()
	b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: instance}, Role: role, Database: database}}
	if err := env.c.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitBound waits for the binding to be Ready at its generation (and ok, if given) and returns its Secret.
func waitBound(t *testing.T, b *v1alpha1.ServiceBinding, ok func(*v1alpha1.ServiceBinding) bool) *corev1.Secret {
	t.Helper()
	secret := &corev1.Secret{}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != b.Generation || (ok != nil && !ok(b)) {
			return expect(false, "binding "+b.Name+" is Ready", fmt.Sprintf("status %+v", b.Status))
		}
		return env.c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Status.Binding.Name}, secret)
	})
	return secret
}

func patchBinding(t *testing.T, b *v1alpha1.ServiceBinding, change func(*v1alpha1.ServiceBindingSpec)) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		change(&b.Spec)
		return env.c.Update(ctx, b)
	})
}

// pgLogin logs in with the Secret's credentials at addr (the Service's ClusterIP, which resolves
// from the host where its DNS name does not).
func pgLogin(addr string, s *corev1.Secret) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(string(s.Data["username"]), string(s.Data["password"])), Host: addr,
		Path: "/" + string(s.Data["database"]), RawQuery: "sslmode=disable"}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	return conn.Close(context.Background())
}

func amqpLogin(addr string, s *corev1.Secret) error {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(string(s.Data["username"]), string(s.Data["password"])), Host: addr}
	conn, err := amqp.DialConfig(u.String(), amqp.Config{Vhost: string(s.Data["vhost"]), Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}
