//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// e2ePassword is for a role the test creates on a throw-away instance.
const e2ePassword = "e2e-only-password"

// testPostgresHighAvailability runs inside TestOperator: three pods with synchronous replication;
// the primary's pod is deleted, a replica takes over through the same Service without losing a
// committed row, the old primary rejoins; a switchover, a reload and two rolling updates follow.
// TLS is on throughout: clients verify the server against the published CA.
func testPostgresHighAvailability(t *testing.T) {
	ctx := context.Background()
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"], Default: true})
	ns := testNamespace(t, "postgres-ha")
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Replicas: ptr(int32(3)),
			SynchronousReplicas: ptr(int32(1)),
			TLS:                 &v1alpha1.TLSSpec{Enabled: true},
			Storage:             &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy:      v1alpha1.DeletionPolicyDelete}}
	createInstance(t, inst)
	waitInstanceReady(t, inst)
	checkDisruptionBudget(t, inst)
	waitMembers(t, inst, "ledger-0", "streaming (synchronous)")

	psql(t, ns, inst.Status.CurrentPrimary, "CREATE ROLE app LOGIN PASSWORD '"+e2ePassword+"'; CREATE TABLE ledger (id int PRIMARY KEY, what text); ALTER TABLE ledger OWNER TO app")
	rw := serviceAddress(t, ns, "ledger", 5432)
	checkTLS(t, inst, rw)
	for i := range 100 {
		if err := insert(ctx, rw, i, "before failover"); err != nil {
			t.Fatalf("insert %d through the read-write Service: %v", i, err)
		}
	}
	ro := serviceAddress(t, ns, "ledger-ro", 5432)
	testenv.Eventually(t, time.Minute, func() error {
		var inRecovery bool
		err := queryOnce(ctx, ro, "SELECT pg_is_in_recovery()", &inRecovery)
		return expect(err == nil && inRecovery, "the read-only Service reaches a replica", fmt.Sprint(inRecovery, err))
	})

	// Failover: delete the primary's pod while a client keeps writing through the Service.
	w := startWriter(ctx, rw, 10000)
	time.Sleep(2 * time.Second)
	deletedAt := time.Now()
	old := deletePod(t, ns, "ledger-0")
	waitInstance(t, inst, 2*time.Minute, "a replica is the primary and the Service's writes reach it", func() (bool, string) {
		p := inst.Status.CurrentPrimary
		return (p == "ledger-1" || p == "ledger-2") && w.succeededElsewhere(old.Status.PodIP, deletedAt), "currentPrimary " + p
	})
	report := w.stop()
	t.Logf("FAILOVER: %s", report)
	fmt.Printf("FAILOVER (primary pod deleted): %s\n", report)
	var n int
	if queryEventually(t, rw, "SELECT count(*) FROM ledger WHERE id < 100", &n); n != 100 {
		t.Fatalf("after failover the new primary has %d of the 100 rows committed before", n)
	}
	w.checkNoneLost(t, rw)

	// The old primary comes back as a replica of the new one and catches up.
	waitPodReplaced(t, old)
	waitMembers(t, inst, inst.Status.CurrentPrimary, "streaming (synchronous)")
	var total int
	queryEventually(t, rw, "SELECT count(*) FROM ledger", &total)
	testenv.Eventually(t, time.Minute, func() error {
		got := psql(t, ns, "ledger-0", "SELECT pg_is_in_recovery()::text || ' ' || (SELECT count(*) FROM ledger)")
		return expect(got == fmt.Sprintf("true %d", total), "ledger-0 is a replica with every row", got)
	})

	// Switchover back to ledger-0, declared in the spec, with writes going on.
	former := getPod(t, ns, inst.Status.CurrentPrimary)
	w = startWriter(ctx, rw, 20000)
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Primary = "ledger-0" })
	waitMembers(t, inst, "ledger-0", "streaming (synchronous)")
	t.Logf("SWITCHOVER: %s", w.stop())
	w.checkNoneLost(t, rw)
	// The former primary stepped down in place: its agent restarted postgres as a replica in the
	// same container (a container restart meets the kubelet's crash back-off, which grows).
	if now := getPod(t, ns, former.Name); now.UID != former.UID || containerRestarts(now) != containerRestarts(former) {
		t.Errorf("%s stepped down with its pod replaced or its containers restarted: restarts %d, were %d",
			former.Name, containerRestarts(now), containerRestarts(former))
	}

	// Configuration: a reload parameter restarts nothing; a restart parameter and a resources
	// change each roll the pods, replicas first, the primary last after a switchover.
	checkReload(t, inst)
	rollPods(t, inst, rw, "max_connections", 100000, func(s *v1alpha1.ServiceInstanceSpec) {
		s.Parameters = map[string]string{"work_mem": "12MB", "max_connections": "120"}
	})
	for _, p := range []string{"ledger-0", "ledger-1", "ledger-2"} {
		if got := psql(t, ns, p, "SHOW max_connections"); got != "120" {
			t.Errorf("%s: max_connections %s after the roll, want 120", p, got)
		}
	}
	rollPods(t, inst, rw, "resources", 200000, func(s *v1alpha1.ServiceInstanceSpec) {
		s.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	})
	if queryEventually(t, rw, "SELECT count(*) FROM ledger WHERE id < 100", &n); n != 100 {
		t.Fatalf("after the rolling update %d of the first 100 rows are left", n)
	}
	// A patch release: the platform team points version 15 at a new image in the catalog. The
	// instance's spec did not ask for it, so its pods keep their image and it lists the patch as a
	// pending restart (#25); once its maintenance window opens, the pods roll onto the image the
	// same way as for a spec change.
	rebuilt := env.images["postgres-15-rebuild"]
	held := map[string]string{}
	for _, p := range []string{"ledger-0", "ledger-1", "ledger-2"} {
		held[p] = podUID(t, ns, p)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cat := &v1alpha1.VersionCatalog{}
		if err := env.c.Get(ctx, client.ObjectKey{Name: "postgres"}, cat); err != nil {
			return err
		}
		cat.Spec.Versions[0].Image = rebuilt
		return env.c.Update(ctx, cat)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitInstance(t, inst, waitTimeout, "the catalog's new image is a pending restart", func() (bool, string) {
		p := inst.Status.PendingRestarts
		return len(p) == 1 && p[0].Reason == "ImagePatch" && strings.Contains(p[0].Message, rebuilt), fmt.Sprintf("pending %+v", p)
	})
	for p, uid := range held {
		if podUID(t, ns, p) != uid {
			t.Fatalf("%s was replaced while the catalog's image was a pending restart", p)
		}
	}
	rollPods(t, inst, rw, "catalog image in the maintenance window", 250000, func(s *v1alpha1.ServiceInstanceSpec) {
		s.MaintenanceWindow = &v1alpha1.MaintenanceWindow{StartTime: "00:00", Duration: metav1.Duration{Duration: 24 * time.Hour}}
	})
	for _, p := range []string{"ledger-0", "ledger-1", "ledger-2"} {
		var pod corev1.Pod
		if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: p}, &pod); err != nil {
			t.Fatal(err)
		}
		for _, c := range pod.Spec.Containers {
			if c.Name == "postgres" && c.Image != rebuilt {
				t.Errorf("%s runs %s after the catalog's image changed, want %s", p, c.Image, rebuilt)
			}
		}
	}
	if inst.Status.Image != rebuilt {
		t.Errorf("status.image %s, want %s", inst.Status.Image, rebuilt)
	}

	// TLS required (#23): one more roll; replicas now verify the primary's certificate, and
	// everything after (the hard kill, the chaos step) runs with it.
	rollPods(t, inst, rw, "tls.required", 260000, func(s *v1alpha1.ServiceInstanceSpec) { s.TLS.Required = true })
	checkTLSRequired(t, inst, rw)
	checkCARotation(t, inst, rw)

	// Hard kill: the primary's pod is deleted with no grace period, so its agent cannot stop
	// postgres cleanly nor release the lease; the operator elects when the lease expires.
	waitMembers(t, inst, "ledger-0", "streaming (synchronous)")
	w = startWriter(ctx, rw, 300000)
	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	victim := deletePod(t, ns, "ledger-0", client.GracePeriodSeconds(0))
	// Either a replica is elected once the lease expires, or, when the kubelet recreates the
	// killed pod before that, the same member (its volume, its lease) resumes as primary in its
	// new pod. Both are correct; what matters is that writes reach a new server and none is lost.
	waitInstance(t, inst, 2*time.Minute, "a primary serves and the Service's writes reach it", func() (bool, string) {
		p := inst.Status.CurrentPrimary
		return p != "" && w.succeededElsewhere(victim.Status.PodIP, killedAt), "currentPrimary " + p
	})
	report = w.stop()
	t.Logf("HARD KILL: %s; the primary is now %s", report, inst.Status.CurrentPrimary)
	fmt.Printf("FAILOVER (primary pod killed without grace): %s\n", report)
	w.checkNoneLost(t, rw)
	waitPodReplaced(t, victim)
	waitMembers(t, inst, "ledger-0", "streaming (synchronous)")

	testPostgresChaos(t, inst, rw)
}

// writer inserts rows through the Service in the background and records the longest stretch in
// which no insert succeeded.
type writer struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	firstID int
	mu      sync.Mutex
	// next is the id after the last one tried.
	next    int
	ok, bad int
	longest time.Duration
	lastOK  time.Time
	// lastServer is the address of the server that committed the last insert.
	lastServer string
}

// succeededElsewhere: an insert after t was committed by a server other than ip.
func (w *writer) succeededElsewhere(ip string, t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastOK.After(t) && w.lastServer != ip
}

// checkNoneLost: every insert the server confirmed is there (a few more may be, whose
// confirmation was lost with the connection).
func (w *writer) checkNoneLost(t *testing.T, addr string) {
	t.Helper()
	var n int
	w.mu.Lock()
	next := w.next
	w.mu.Unlock()
	queryEventually(t, addr, fmt.Sprintf("SELECT count(*) FROM ledger WHERE id >= %d AND id < %d", w.firstID, next), &n)
	if n < w.ok {
		t.Fatalf("%d inserts were confirmed but only %d rows are there: confirmed writes were lost", w.ok, n)
	}
}

func startWriter(ctx context.Context, addr string, firstID int) *writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &writer{cancel: cancel, firstID: firstID, lastOK: time.Now()}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for id := firstID; ctx.Err() == nil; id++ {
			server, err := insertAt(ctx, addr, id, "during a change")
			if ctx.Err() != nil {
				return // stopped mid-insert: neither a success nor a failure
			}
			w.mu.Lock()
			w.next = id + 1
			if err != nil {
				w.bad++
			} else {
				w.ok++
				w.lastServer = server
				w.longest = max(w.longest, time.Since(w.lastOK))
				w.lastOK = time.Now()
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return w
}

func (w *writer) stop() string {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d inserts succeeded, %d failed, longest gap between successful inserts %s", w.ok, w.bad, w.longest.Round(100*time.Millisecond))
}

func connString(addr string) string {
	// prefer: TLS when the server offers it (the HA instance requires it after a while), unverified
	// (checkTLS verifies); in clear otherwise.
	return fmt.Sprintf("postgres://app:%s@%s/postgres?connect_timeout=2&sslmode=prefer", e2ePassword, addr)
}

func insert(ctx context.Context, addr string, id int, what string) error {
	_, err := insertAt(ctx, addr, id, what)
	return err
}

// insertAt inserts a row and returns the address of the server that committed it.
func insertAt(ctx context.Context, addr string, id int, what string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString(addr))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var server string
	err = conn.QueryRow(ctx, "INSERT INTO ledger VALUES ($1, $2) RETURNING host(inet_server_addr())", id, what).Scan(&server)
	return server, err
}

// queryEventually runs the query until it succeeds, for up to 30 s, as an application retries:
// the instance reports Ready when its pods are, and kube-proxy may route the Service to the
// new primary a moment later. What the writer measured as outage is reported separately.
func queryEventually(t *testing.T, addr, sql string, dest ...any) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error { return queryOnce(context.Background(), addr, sql, dest...) })
}

func queryOnce(ctx context.Context, addr, sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString(addr))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// serviceAddress is the Service's ClusterIP: the host reaches it through kube-proxy's rules.
func serviceAddress(t *testing.T, ns, name string, port int) string {
	t.Helper()
	var svc corev1.Service
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(port))
}

func podUID(t *testing.T, ns, name string) string {
	t.Helper()
	var p corev1.Pod
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return string(p.UID)
}

func deletePod(t *testing.T, ns, name string, opts ...client.DeleteOption) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	if err := env.c.Delete(context.Background(), &p, opts...); err != nil {
		t.Fatal(err)
	}
	return &p
}

// containerRestarts is how often the kubelet restarted the pod's containers.
func containerRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// waitPodReplaced waits until the StatefulSet has a new, ready pod in place of the old one.
func waitPodReplaced(t *testing.T, old *corev1.Pod) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		var p corev1.Pod
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(old), &p); err != nil {
			return err
		}
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		return expect(p.UID != old.UID && ready, "a new "+old.Name+" is ready", string(p.Status.Phase))
	})
}

func patchInstance(t *testing.T, inst *v1alpha1.ServiceInstance, change func(*v1alpha1.ServiceInstanceSpec)) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		change(&inst.Spec)
		return env.c.Update(context.Background(), inst)
	})
}

// waitMembers waits until primary is the primary and every other member reports replicaState.
func waitMembers(t *testing.T, inst *v1alpha1.ServiceInstance, primary, replicaState string) {
	t.Helper()
	waitInstance(t, inst, waitTimeout, fmt.Sprintf("%s primary, the others %q", primary, replicaState), func() (bool, string) {
		ok := inst.Status.CurrentPrimary == primary && len(inst.Status.Members) == int(inst.DesiredReplicas())
		for _, m := range inst.Status.Members {
			if m.Name != primary && m.State != replicaState {
				ok = false
			}
		}
		return ok, fmt.Sprintf("currentPrimary %s, members %+v", inst.Status.CurrentPrimary, inst.Status.Members)
	})
}
