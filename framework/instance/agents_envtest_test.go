package instance_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An operator upgrade upgrades the agents in place. The pod is real as far as envtest allows: the
// object the StatefulSet controller would make, reported running on loopback, and its agent is a
// real agent process (the reference engine's, with a real Redis server: the instance's engine is
// the fake one, whose pods are agent pods) started from the old operator's binary, with the
// certificate the operator issued. The new operator, which knows its own binary, sends it; the
// agent replaces itself; the pod's annotations say which agent runs; nothing is pending and the
// StatefulSet keeps its template: the server never restarted. A settled reconcile then asks and
// writes nothing.
func TestOperatorUpgradeUpgradesTheAgentsInPlace(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on $PATH: run `make test` (it installs it), or apt-get install redis-server")
	}
	old, next := agenttest.Releases(t)
	u := upgrade(t, nil)
	ctx, c := context.Background(), u.c

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ledger-0", Namespace: u.ns, Labels: u.sts.Spec.Template.Labels},
		Spec: u.sts.Spec.Template.Spec}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: pod.Spec.Containers[0].Name, Ready: true, ContainerID: "containerd://first", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	agent, addr := startReferenceAgent(t, u, old.Path)
	server := childOf(t, agent.Cmd.Process.Pid)
	started := testenv.ProcessStart(t, server)

	fi, err := os.Stat(next.Path)
	if err != nil {
		t.Fatal(err)
	}
	release := &fwagent.Release{Path: next.Path, Size: fi.Size(), Info: fwagent.Info{Version: next.Version, Digest: next.Digest}}
	opts := operator.Options{AgentImage: "operator:2", Agent: release, AgentAddress: func(*corev1.Pod) string { return addr }}
	m := u.startWith(t, opts)
	defer m.Stop()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, types.NamespacedName{Namespace: u.ns, Name: "ledger-0"}, pod); err != nil {
			return err
		}
		if a := pod.Annotations; a[instance.AnnotationAgentVersion] != "new" || a[instance.AnnotationAgentDigest] != release.Info.Digest ||
			a[instance.AnnotationAgentContainer] != "containerd://first" {
			return fmt.Errorf("pod annotations %v", a)
		}
		return nil
	})
	m.WaitQuiet(t, time.Minute)
	si := waitPhase(t, c, u.ns, "ledger", v1alpha1.PhaseReady)
	if len(si.Status.PendingRestarts) != 0 {
		t.Fatalf("pending restarts after the agents were upgraded in place: %+v", si.Status.PendingRestarts)
	}
	if image, sts := agentImage(t, c, u.ns, "ledger"); image != "operator:1" || sts.ResourceVersion != u.sts.ResourceVersion {
		t.Fatalf("the upgrade changed the StatefulSet (agent image %q)", image)
	}
	if done, err := agent.Exited(); done {
		t.Fatalf("the agent's process ended: %v", err)
	}
	if now := childOf(t, agent.Cmd.Process.Pid); now != server || testenv.ProcessStart(t, now) != started {
		t.Fatalf("the server restarted: pid %d, was %d", now, server)
	}

	before := m.Writes.Count()
	r := &instance.Reconciler{Client: m.Manager.GetClient(), Scheme: m.Manager.GetScheme(), Engine: agentPods{}, AgentImage: "operator:2",
		Agent: release, AgentAddress: opts.AgentAddress, Recorder: m.Manager.GetEventRecorder("agents-test")}
	for range 3 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: u.ns, Name: "ledger"}}); err != nil {
			t.Fatal(err)
		}
	}
	m.WaitQuiet(t, time.Minute)
	if n := m.Writes.Count() - before; n != 0 {
		t.Fatalf("reconciling the settled instance made %d writes, want 0", n)
	}
}

// startReferenceAgent runs the reference engine's agent from bin with a Redis server, with the
// certificate the operator issued to the instance's agents, and returns it and its address.
func startReferenceAgent(t *testing.T, u *upgraded, bin string) (*agenttest.Process, string) {
	t.Helper()
	var secret corev1.Secret
	testenv.Eventually(t, time.Minute, func() error {
		return u.c.Get(context.Background(), types.NamespacedName{Namespace: u.ns, Name: certs.AgentSecretName("ledger")}, &secret)
	})
	dir := t.TempDir()
	tlsDir, config, secrets := filepath.Join(dir, "tls"), filepath.Join(dir, "config"), filepath.Join(dir, "secret")
	files := map[string]string{filepath.Join(config, "redis.conf"): "", filepath.Join(secrets, "password"): "agents-test-secret"}
	for _, k := range []string{certs.CertKey, certs.KeyKey, certs.CAKey} {
		files[filepath.Join(tlsDir, k)] = string(secret.Data[k])
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	inst := &agenttest.Instance{Dir: tlsDir}
	p := inst.StartProcess(t, agenttest.Command{Bin: bin, Engine: "reference", Addr: addr, Args: []string{
		"--config-dir=" + config, "--secret-dir=" + secrets, "--data-dir=" + filepath.Join(dir, "data"), "--run-dir=" + filepath.Join(dir, "run"),
		"--port=" + strconv.Itoa(testenv.FreePort(t)), "--bind=127.0.0.1"}})
	testenv.Eventually(t, time.Minute, func() error {
		if done, err := p.Exited(); done {
			t.Fatalf("the agent ended: %v", err)
		}
		if len(children(p.Cmd.Process.Pid)) != 1 {
			return fmt.Errorf("the agent has not started its server yet")
		}
		return nil
	})
	return p, addr
}

// children are the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(strings.Split(s, "/")[2])
			out = append(out, child)
		}
	}
	return out
}

// childOf is pid's only child.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	c := children(pid)
	if len(c) != 1 {
		t.Fatalf("process %d has children %v, want one (the server)", pid, c)
	}
	return c[0]
}
