//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The chaos step (issue #22) runs inside the HA step on its three-pod instance, first with one
// synchronous replica, then with none. Each fault is made for real on the local cluster: the API
// server's process is stopped (SIGSTOP), the primary pod's network namespace drops its traffic to
// the API server, the primary pod's processes are stopped, the operator is killed during a
// failover. A writer commits rows through the read-write Service meanwhile. Each scenario records
// the longest stretch without a committed row (RTO), the rows confirmed but missing afterwards
// (RPO: must be 0 with a synchronous replica), and whether the old primary took a write after
// its bound (written to directly, by its pod IP). The rows are printed as a Markdown table
// ("CHAOS |"), which docs/postgres.md carries.

// chaosResult is one row of the table.
type chaosResult struct {
	scenario    string
	synchronous int32
	rto         time.Duration
	lost        int
	oldPrimary  string // what a write straight to the old primary after its bound got
}

func (r chaosResult) String() string {
	return fmt.Sprintf("CHAOS | %s | %d | %s | %d | %s |", r.scenario, r.synchronous, r.rto.Round(100*time.Millisecond), r.lost, r.oldPrimary)
}

func testPostgresChaos(t *testing.T, inst *v1alpha1.ServiceInstance, rw string) {
	var results []chaosResult
	for _, sync := range []int32{1, 0} {
		patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.SynchronousReplicas = ptr(sync) })
		for _, sc := range []struct {
			name string
			run  func(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string
		}{
			{"API server stopped for 20 s", apiServerOutage},
			{"primary cut off from the API server", primaryCutOffFromAPIServer},
			{"primary cut off from its replicas for 20 s", primaryCutOffFromReplicas},
			{"primary's processes frozen for 15 s", primaryFrozen},
			{"operator killed during a failover", operatorKilledDuringFailover},
		} {
			settle(t, inst, sync)
			w := startWriter(context.Background(), rw, 400000+len(results)*10000)
			time.Sleep(2 * time.Second)
			old := sc.run(t, inst, w)
			time.Sleep(2 * time.Second) // writes on the new primary before the writer stops
			w.stop()
			r := chaosResult{scenario: sc.name, synchronous: sync, rto: w.longest, lost: w.lost(t, rw), oldPrimary: old}
			t.Log(r)
			fmt.Println(r)
			if sync > 0 && r.lost > 0 {
				t.Errorf("%s with a synchronous replica: %d confirmed rows lost", sc.name, r.lost)
			}
			if sync > 0 && r.oldPrimary == acceptedAWrite {
				t.Errorf("%s with a synchronous replica: the old primary committed a write after its bound", sc.name)
			}
			results = append(results, r)
		}
	}
	fmt.Println("CHAOS | scenario | synchronous replicas | RTO (longest gap between committed rows) | confirmed rows lost | old primary after its bound |")
	for _, r := range results {
		fmt.Println(r)
	}
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.SynchronousReplicas = ptr(int32(1)) })
	settle(t, inst, 1)
}

// settle waits until every member is back (a primary and replicas streaming) and the operator
// has led for 10 s: an API-server outage costs the operator its leader lease, and a scenario
// right after would measure its restart (leader election, then its first look at each lease).
func settle(t *testing.T, inst *v1alpha1.ServiceInstance, sync int32) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		l := &coordinationv1.Lease{}
		if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: releaseNamespace, Name: leaseName}, l); err != nil {
			return err
		}
		s := l.Spec
		leads := s.HolderIdentity != nil && s.AcquireTime != nil && s.RenewTime != nil &&
			time.Since(s.AcquireTime.Time) > 10*time.Second && time.Since(s.RenewTime.Time) < 5*time.Second
		return expect(leads, "the operator has led for 10 s", fmt.Sprintf("leader lease %+v", s))
	})
	state := "streaming"
	if sync > 0 {
		state = "streaming (synchronous)"
	}
	waitInstance(t, inst, waitTimeout, "a primary and every replica "+state, func() (bool, string) {
		ok := inst.Status.CurrentPrimary != "" && len(inst.Status.Members) == int(inst.DesiredReplicas()) && inst.Status.Phase == v1alpha1.PhaseReady
		for _, m := range inst.Status.Members {
			if m.Name != inst.Status.CurrentPrimary && m.State != state {
				ok = false
			}
		}
		return ok, fmt.Sprintf("currentPrimary %s, members %+v", inst.Status.CurrentPrimary, inst.Status.Members)
	})
}

// apiServerOutage stops the API server for 20 s: every agent loses its lease at once, and the
// operator too. The primary must serve on (the failsafe): same postmaster, writes committed
// while the API server was away for longer than the fence would allow.
func apiServerOutage(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string {
	primary := inst.Status.CurrentPrimary
	started := psql(t, inst.Namespace, primary, "SELECT pg_postmaster_start_time()")
	pid := apiServerPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the API server: %v", err)
	}
	stoppedAt := time.Now()
	time.Sleep(20 * time.Second)
	committedLate := w.succeededSince(stoppedAt.Add(10 * time.Second))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("resuming the API server: %v", err)
	}
	if !committedLate {
		t.Errorf("no row was committed between 10 s and 20 s into the API server's outage: the primary did not serve on")
	}
	testenv.Eventually(t, time.Minute, func() error {
		got := psql(t, inst.Namespace, primary, "SELECT pg_postmaster_start_time()")
		return expect(got == started, primary+"'s postmaster was not restarted", got+" (was "+started+")")
	})
	return "was not replaced (still primary, by design)"
}

// primaryCutOffFromAPIServer drops the primary pod's traffic to the API server: its replicas read
// the lease and do not confirm it, so it fences, and the operator elects another once the lease
// expires. Then the rules go and the old primary rejoins as a replica.
func primaryCutOffFromAPIServer(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string {
	old := getPod(t, inst.Namespace, inst.Status.CurrentPrimary)
	restore := cutFromAPIServer(t, old)
	defer restore()
	cutAt := time.Now()
	waitFailover(t, inst, w, old, cutAt)
	return writeStraightTo(old.Status.PodIP)
}

// primaryCutOffFromReplicas drops the primary pod's traffic to and from the other members for
// 20 s. It still renews its lease, so it stays primary (no failover: the lease, not the
// replicas, decides who is primary); with a synchronous replica its commits wait until the
// partition heals, without one they go on. Then the replicas reconnect and catch up.
func primaryCutOffFromReplicas(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string {
	primary := getPod(t, inst.Namespace, inst.Status.CurrentPrimary)
	started := psql(t, inst.Namespace, primary.Name, "SELECT pg_postmaster_start_time()")
	var replicas []*corev1.Pod
	for _, m := range inst.Status.Members {
		if m.Name != primary.Name {
			replicas = append(replicas, getPod(t, inst.Namespace, m.Name))
		}
	}
	heal := cutFromPods(t, primary, replicas...)
	time.Sleep(20 * time.Second)
	heal()
	testenv.Eventually(t, time.Minute, func() error {
		return expect(w.succeededSince(time.Now().Add(-time.Second)), "rows are committed again", "none since the partition healed")
	})
	if got := psql(t, inst.Namespace, primary.Name, "SELECT pg_postmaster_start_time()"); got != started {
		t.Errorf("%s's postmaster restarted (%s, was %s): a primary that keeps its lease must not be replaced", primary.Name, got, started)
	}
	return "was not replaced (renews its lease, by design)"
}

// primaryFrozen stops every process of the primary's pod (agent and postgres) for longer than
// the lease: the operator elects another; when they wake, the old primary fences before it can
// commit (with a synchronous replica: its replicas follow the new primary).
func primaryFrozen(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string {
	old := getPod(t, inst.Namespace, inst.Status.CurrentPrimary)
	pids := podPIDs(t, old)
	signal(t, pids, syscall.SIGSTOP)
	frozenAt := time.Now()
	waitFailover(t, inst, w, old, frozenAt)
	if d := 15*time.Second - time.Since(frozenAt); d > 0 {
		time.Sleep(d)
	}
	// Woken and written to at once: the earliest a frozen primary could take a write.
	signal(t, pids, syscall.SIGCONT)
	return writeStraightTo(old.Status.PodIP)
}

// operatorKilledDuringFailover deletes the primary's pod without grace and kills the operator
// right after: the new operator process finishes the failover.
func operatorKilledDuringFailover(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer) string {
	killedAt := time.Now()
	old := deletePod(t, inst.Namespace, inst.Status.CurrentPrimary, client.GracePeriodSeconds(0))
	sigkillOperator(t)
	waitFailover(t, inst, w, old, killedAt)
	return "pod deleted"
}

// waitFailover waits until the Service's writes are committed by a server other than old.
func waitFailover(t *testing.T, inst *v1alpha1.ServiceInstance, w *writer, old *corev1.Pod, since time.Time) {
	t.Helper()
	waitInstance(t, inst, 2*time.Minute, "another primary serves the Service's writes", func() (bool, string) {
		p := inst.Status.CurrentPrimary
		return p != "" && w.succeededElsewhere(old.Status.PodIP, since), "currentPrimary " + p
	})
}

// writeStraightTo writes to a server by its pod IP, bypassing the Service, and says what happened.
func writeStraightTo(ip string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := insertAt(ctx, net.JoinHostPort(ip, "5432"), 999999999, "to the old primary"); err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "read-only"):
			return "refused (read-only)"
		case strings.Contains(msg, "connect"), strings.Contains(msg, "refused"):
			return "refused (not running)"
		case ctx.Err() != nil:
			return "not confirmed (waits for a synchronous replica)"
		}
		return "refused: " + msg
	}
	return acceptedAWrite
}

const acceptedAWrite = "ACCEPTED A WRITE"

// succeededSince: an insert was committed after t.
func (w *writer) succeededSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastOK.After(t)
}

// lost counts the writer's confirmed inserts that are missing.
func (w *writer) lost(t *testing.T, addr string) int {
	t.Helper()
	var n int
	queryEventually(t, addr, fmt.Sprintf("SELECT count(*) FROM ledger WHERE id >= %d AND id < %d", w.firstID, w.firstID+10000), &n)
	return max(w.ok-n, 0)
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// apiServerPID is the local cluster's API server (clusterPID).
func apiServerPID(t *testing.T) int {
	t.Helper()
	return clusterPID(t, "kube-apiserver")
}

// podPIDs are the processes of a pod on this machine, found by the pod's UID in their cgroup.
func podPIDs(t *testing.T, pod *corev1.Pod) []int {
	t.Helper()
	uid := string(pod.UID)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, proc := range procs {
		cgroup, err := os.ReadFile(proc + "/cgroup")
		if err != nil || !strings.Contains(string(cgroup), uid) && !strings.Contains(string(cgroup), strings.ReplaceAll(uid, "-", "_")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(proc)); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no process of pod %s found on this machine: the chaos step needs the local cluster (make e2e)", pod.Name)
	}
	return pids
}

// sandboxPID is the pod's pause process, which holds its network namespace for as long as the
// pod lives: any other process of the pod (a probe's, postgres once fenced) may be gone before
// the rules are added or removed.
func sandboxPID(t *testing.T, pod *corev1.Pod) int {
	t.Helper()
	for _, pid := range podPIDs(t, pod) {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "pause" {
			return pid
		}
	}
	t.Fatalf("no pause process of pod %s found on this machine: the chaos step needs the local cluster (make e2e)", pod.Name)
	return 0
}

func signal(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			t.Fatalf("%s to %d: %v", sig, pid, err)
		}
	}
}

// cutFromAPIServer drops, in the pod's network namespace, its packets to the API server (the
// kubernetes Service and the address behind it); the returned func removes the rules.
func cutFromAPIServer(t *testing.T, pod *corev1.Pod) func() {
	t.Helper()
	svc := &corev1.Service{}
	if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "kubernetes"}, svc); err != nil {
		t.Fatal(err)
	}
	server, err := url.Parse(env.cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	return dropPackets(t, pod, [][]string{
		{"OUTPUT", "-d", svc.Spec.ClusterIP, "-p", "tcp", "--dport", "443", "-j", "DROP"},
		{"OUTPUT", "-d", server.Hostname(), "-p", "tcp", "--dport", server.Port(), "-j", "DROP"},
	})
}

// cutFromPods drops, in the pod's network namespace, every packet to and from the other pods.
func cutFromPods(t *testing.T, pod *corev1.Pod, others ...*corev1.Pod) func() {
	t.Helper()
	var rules [][]string
	for _, o := range others {
		rules = append(rules, []string{"OUTPUT", "-d", o.Status.PodIP, "-j", "DROP"}, []string{"INPUT", "-s", o.Status.PodIP, "-j", "DROP"})
	}
	return dropPackets(t, pod, rules)
}

// dropPackets appends iptables rules (chain first) in the pod's network namespace, which lives as
// long as the pod (its containers may restart meanwhile); the returned func deletes them.
func dropPackets(t *testing.T, pod *corev1.Pod, rules [][]string) func() {
	t.Helper()
	netns := "--net=/proc/" + strconv.Itoa(sandboxPID(t, pod)) + "/ns/net"
	iptables := func(op string, rule []string) error {
		out, err := exec.Command("nsenter", append([]string{netns, "iptables", op}, rule...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s %v in %s's network namespace: %v: %s", op, rule, pod.Name, err, out)
		}
		return nil
	}
	for _, r := range rules {
		if err := iptables("-A", r); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, r := range rules {
			if err := iptables("-D", r); err != nil {
				t.Error(err)
			}
		}
	}
}
