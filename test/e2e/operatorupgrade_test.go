//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testOperatorUpgrade: a new operator image restarts no database process. The "new release" is
// this build under another image name (hack/images.sh: operator-upgrade), which is what changes
// every pod template when the agent follows the operator's image; an upgrade from the previous
// release's build is issue #25's next step. Every instance's agent and server processes keep
// their PID and start time, and the instances list the new agent as a pending restart.
func testOperatorUpgrade(t *testing.T) {
	ns := testNamespace(t, "upgrade")
	insts := []*v1alpha1.ServiceInstance{
		{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "3.10"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "mongodb", Version: "ferretdb-1.24"}},
	}
	for _, inst := range insts {
		inst.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
		createInstance(t, inst)
	}
	before := map[string]string{}
	for _, inst := range insts {
		waitInstanceReady(t, inst)
		pod := getPod(t, ns, inst.Name+"-0")
		before[pod.Name] = serverProcesses(t, pod)
		t.Logf("UPGRADE: before, %s runs %s", pod.Name, before[pod.Name])
	}

	_, oldTag := env.image("operator")
	repo, tag := env.image("operator-upgrade")
	env.runHelm(t, "upgrade", releaseName, filepath.Join(env.root, "charts", "datafleet"), "--namespace", releaseNamespace,
		"--reuse-values", "--wait", "--timeout", "3m", "--set", "image.repository="+repo, "--set", "image.tag="+tag)
	testenv.Eventually(t, waitTimeout, func() error {
		var d appsv1.Deployment
		if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: releaseNamespace, Name: releaseName}, &d); err != nil {
			return err
		}
		image := d.Spec.Template.Spec.Containers[0].Image
		return expect(image == repo+":"+tag && d.Status.UpdatedReplicas == 1 && d.Status.AvailableReplicas == 1 && d.Status.Replicas == 1,
			"the upgraded manager is the only one running", fmt.Sprintf("image %s, status %+v", image, d.Status))
	})
	// The new operator reconciled each instance (it says what it holds back) and left the pods as
	// they were.
	for _, inst := range insts {
		waitInstance(t, inst, waitTimeout, "the new agent is a pending restart", func() (bool, string) {
			p := inst.Status.PendingRestarts
			return len(p) == 1 && p[0].Reason == "AgentUpgrade" && strings.Contains(p[0].Message, oldTag) && inst.Status.Phase == v1alpha1.PhaseReady,
				fmt.Sprintf("phase %s, pending %+v", inst.Status.Phase, p)
		})
		pod := getPod(t, ns, inst.Name+"-0")
		if now := serverProcesses(t, pod); now != before[pod.Name] {
			t.Errorf("%s restarted with the operator upgrade: %s before, %s after", pod.Name, before[pod.Name], now)
		}
		t.Logf("UPGRADE: after, %s still runs %s; pending: %s", pod.Name, before[pod.Name], inst.Status.PendingRestarts[0].Message)
	}
}

// serverProcesses describes the pod's agent (PID 1 of its container) and the server it started,
// each by command, PID and start time (clock ticks after boot, /proc/PID/stat): equal before and
// after means no process restarted.
func serverProcesses(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	type proc struct{ comm, ppid, start string }
	procs := map[string]proc{}
	for _, pid := range podPIDs(t, pod) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone since it was listed
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[end+1:]) // state, ppid, ..., starttime (the 20th)
		if open < 0 || end < open || len(fields) < 20 {
			t.Fatalf("/proc/%d/stat: %q", pid, s)
		}
		procs[strconv.Itoa(pid)] = proc{comm: s[open+1 : end], ppid: fields[1], start: fields[19]}
	}
	var agent string
	for pid, p := range procs {
		if p.comm == "manager" && procs[p.ppid].comm != "manager" {
			agent = pid
		}
	}
	if agent == "" {
		t.Fatalf("no agent process in pod %s: %+v", pod.Name, procs)
	}
	// The server is the agent's first child: processes that daemonized (epmd) or that the server
	// spawns and ends (Erlang's inet_gethost) are reparented to the agent as PID 1 later on.
	server, first := "", int64(0)
	for pid, p := range procs {
		start, _ := strconv.ParseInt(p.start, 10, 64)
		if p.ppid == agent && (server == "" || start < first) {
			server, first = pid, start
		}
	}
	if server == "" {
		t.Fatalf("the agent of pod %s runs no server: %+v", pod.Name, procs)
	}
	return fmt.Sprintf("agent pid %s since %s, %s pid %s since %s", agent, procs[agent].start, procs[server].comm, server, procs[server].start)
}
