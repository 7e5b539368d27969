//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testNodes runs inside TestOperator on the local cluster's three nodes (issue #22 point 4; the
// cluster's other nodes are more kubelets and containerds on this machine, see
// docs/local-cluster.md). A three-pod postgres instance with a synchronous replica has a pod on each
// node (its anti-affinity). The primary's node stops: its kubelet, its containerd and their shims,
// and every process of its pods are frozen, as a node that hangs or loses its network. A replica on
// another node takes over within the lease's bound without losing a confirmed row, and when the
// node comes back the old primary refuses a write sent straight to it and rejoins. Then the
// disruption budget holds a drain: a replica's node drained (cordoned, its pod evicted, which
// cannot come back while the node is cordoned: its volume is there), the eviction of the primary
// from its node is refused; uncordoned, the instance is whole again.
func testNodes(t *testing.T) {
	ctx := context.Background()
	var nodes corev1.NodeList
	if err := env.c.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) < 3 {
		t.Fatalf("this step needs the local cluster's three nodes (it has %d): test/cluster/cluster.sh up without DATAFLEET_NODES, as make e2e does", len(nodes.Items))
	}
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"], Default: true})
	ns := testNamespace(t, "nodes")
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "spread", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Replicas: ptr(int32(3)), SynchronousReplicas: ptr(int32(1)),
			Storage:        &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	createInstance(t, inst)
	waitInstanceReady(t, inst)
	pods := runningPods(t, inst)
	placed := map[string]string{}
	for _, p := range pods {
		placed[p.Spec.NodeName] = p.Name
	}
	if len(pods) != 3 || len(placed) != 3 {
		t.Fatalf("the instance's 3 pods are not on 3 nodes: %v", placed)
	}
	t.Logf("NODES: one pod per node (anti-affinity): %v", placed)

	// The operator runs one replica: a node that stops with it stops the failover too (until the
	// operator's pod is evicted from the node, 5 minutes by default; docs/postgres.md). The node
	// that stops here is one without it: the primary is moved there first if it is not.
	operatorNode := operatorPod(t).Spec.NodeName
	waitMembers(t, inst, inst.Status.CurrentPrimary, "streaming (synchronous)")
	if primary := getPod(t, ns, inst.Status.CurrentPrimary); primary.Spec.NodeName == operatorNode {
		other := ""
		for _, p := range pods {
			if p.Spec.NodeName != operatorNode {
				other = p.Name
			}
		}
		patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Primary = other })
		waitMembers(t, inst, other, "streaming (synchronous)")
	}
	psql(t, ns, inst.Status.CurrentPrimary, "CREATE ROLE app LOGIN PASSWORD '"+e2ePassword+"'; CREATE TABLE ledger (id int PRIMARY KEY, what text); ALTER TABLE ledger OWNER TO app")
	rw := serviceAddress(t, ns, "spread", 5432)
	settle(t, inst, 1)

	// The primary's node stops.
	old := getPod(t, ns, inst.Status.CurrentPrimary)
	w := startWriter(ctx, rw, 600000)
	time.Sleep(2 * time.Second)
	frozen := nodeProcesses(t, old.Spec.NodeName)
	signal(t, frozen, syscall.SIGSTOP)
	stoppedAt := time.Now()
	unfreeze := func() { signal(t, nodeProcesses(t, old.Spec.NodeName), syscall.SIGCONT) }
	t.Cleanup(unfreeze) // a failed step must not leave a node frozen for the next ones
	waitFailover(t, inst, w, old, stoppedAt)
	failedOver := time.Since(stoppedAt)
	// The node controller sees the node go silent (its grace period), as it would a real one.
	waitNodeReady(t, old.Spec.NodeName, corev1.ConditionUnknown)
	notReady := time.Since(stoppedAt)
	unfreeze()
	// Woken and written to at once: the earliest the old primary could take a write.
	straight := writeStraightTo(old.Status.PodIP)
	time.Sleep(2 * time.Second)
	report := w.stop()
	lost := w.lost(t, rw)
	if straight == acceptedAWrite {
		t.Fatalf("the old primary accepted a write when its node came back, %s after it stopped", time.Since(stoppedAt).Round(time.Second))
	}
	if lost > 0 {
		t.Fatalf("node %s stopped with the primary: %d confirmed rows lost with a synchronous replica", old.Spec.NodeName, lost)
	}
	waitNodeReady(t, old.Spec.NodeName, corev1.ConditionTrue)
	settle(t, inst, 1)
	t.Logf("NODES: node %s stopped with primary %s: %s took over %s later (the writer: %s; %d confirmed rows lost, one synchronous replica); the node was NotReady %s after; back, the old primary %s, and rejoined",
		old.Spec.NodeName, old.Name, inst.Status.CurrentPrimary, failedOver.Round(100*time.Millisecond), report, lost, notReady.Round(time.Second), straight)
	fmt.Printf("NODES | primary's node stopped | %s | %d | %s |\n", failedOver.Round(100*time.Millisecond), lost, straight)

	checkDrainUnderBudget(t, inst)
}

// checkDrainUnderBudget drains a replica's node and then the primary's, as kubectl drain does
// (cordon, then an eviction per pod): the first eviction is allowed; its pod cannot come back on the
// cordoned node (its volume is there), so the budget refuses the second, and the primary serves on.
// Uncordoned, the replica returns and the instance is whole.
func checkDrainUnderBudget(t *testing.T, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	ctx := context.Background()
	primary := getPod(t, inst.Namespace, inst.Status.CurrentPrimary)
	var replica *corev1.Pod
	for _, p := range runningPods(t, inst) {
		if p.Name != primary.Name && replica == nil {
			replica = &p
		}
	}
	defer cordon(t, replica.Spec.NodeName, false)
	cordon(t, replica.Spec.NodeName, true)
	if err := evict(ctx, replica); err != nil {
		t.Fatalf("evicting replica %s from node %s under the budget (one disruption allowed): %v", replica.Name, replica.Spec.NodeName, err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		p := &corev1.Pod{}
		err := env.c.Get(ctx, client.ObjectKeyFromObject(replica), p)
		if err != nil {
			return err
		}
		return expect(p.UID != replica.UID && p.Spec.NodeName == "", replica.Name+" is back, unscheduled: its node is cordoned",
			fmt.Sprintf("uid %s on %q", p.UID, p.Spec.NodeName))
	})
	defer cordon(t, primary.Spec.NodeName, false)
	cordon(t, primary.Spec.NodeName, true)
	err := evict(ctx, primary)
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "disruption budget") {
		t.Fatalf("evicting primary %s while %s cannot come back: %v, want it refused by the disruption budget", primary.Name, replica.Name, err)
	}
	if p := getPod(t, primary.Namespace, primary.Name); p.UID != primary.UID || !p.DeletionTimestamp.IsZero() {
		t.Fatalf("the primary's pod %s was taken down although the budget refused its eviction", primary.Name)
	}
	t.Logf("NODES: drained %s (replica %s evicted, pending: its volume is on the cordoned node); the eviction of primary %s from %s was refused: %v",
		replica.Spec.NodeName, replica.Name, primary.Name, primary.Spec.NodeName, err)
	cordon(t, replica.Spec.NodeName, false)
	cordon(t, primary.Spec.NodeName, false)
	settle(t, inst, 1)
	if p := getPod(t, primary.Namespace, primary.Name); p.UID != primary.UID {
		t.Fatalf("the primary's pod %s was replaced during the drain", primary.Name)
	}
}

// runningPods are the instance's pods, from the API server.
func runningPods(t *testing.T, inst *v1alpha1.ServiceInstance) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := env.c.List(context.Background(), &pods, client.InNamespace(inst.Namespace),
		client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func operatorPod(t *testing.T) *corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := env.c.List(context.Background(), &pods, client.InNamespace(releaseNamespace)); err != nil || len(pods.Items) != 1 {
		t.Fatalf("the operator's pods: %v, %d of 1", err, len(pods.Items))
	}
	return &pods.Items[0]
}

// nodeProcesses are the processes of one of the local cluster's nodes on this machine: its kubelet,
// its containerd and their shims (by the containerd's socket on their command line), and every
// process of the pods bound to it.
func nodeProcesses(t *testing.T, node string) []int {
	t.Helper()
	suffix := ""
	if node != "datafleet-node" {
		suffix = "-" + strings.TrimPrefix(node, "datafleet-node-")
	}
	pids := []int{clusterPID(t, "kubelet"+suffix), clusterPID(t, "containerd"+suffix)}
	socket := "/run/datafleet-cluster/containerd" + suffix + "/containerd.sock"
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		cmdline, err := os.ReadFile(proc + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), "containerd-shim") || !strings.Contains(string(cmdline), socket+"\x00") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(proc)); err == nil {
			pids = append(pids, pid)
		}
	}
	var pods corev1.PodList
	if err := env.c.List(context.Background(), &pods, client.MatchingFields{"spec.nodeName": node}); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Status.Phase == corev1.PodRunning {
			pids = append(pids, podPIDs(t, p)...)
		}
	}
	return pids
}

// clusterPID is a local-cluster component's process, from its pid file next to the kubeconfig.
func clusterPID(t *testing.T, component string) int {
	t.Helper()
	file := filepath.Join(filepath.Dir(os.Getenv("E2E_KUBECONFIG")), "pids", component+".pid")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("this step acts on the local cluster's processes and needs their pid files (make e2e): %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

// waitNodeReady waits for the node's Ready condition to have status.
func waitNodeReady(t *testing.T, name string, status corev1.ConditionStatus) {
	t.Helper()
	testenv.Eventually(t, 3*time.Minute, func() error {
		n := &corev1.Node{}
		if err := env.c.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return expect(c.Status == status, "node "+name+" Ready "+string(status), string(c.Status)+": "+c.Message)
			}
		}
		return fmt.Errorf("node %s has no Ready condition", name)
	})
}

func cordon(t *testing.T, node string, unschedulable bool) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		n := &corev1.Node{}
		if err := env.c.Get(context.Background(), client.ObjectKey{Name: node}, n); err != nil {
			return err
		}
		if n.Spec.Unschedulable == unschedulable {
			return nil
		}
		n.Spec.Unschedulable = unschedulable
		return env.c.Update(context.Background(), n)
	})
}

// evict asks for the pod's eviction, as kubectl drain does: the API server refuses one that its
// disruption budget does not allow (429).
func evict(ctx context.Context, p *corev1.Pod) error {
	return env.cs.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
}
