package instance_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/rollout"
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
	pod := agentPod(t, u, "containerd://first")
	ref := newReferenceAgent(t, u)
	agent := ref.start(t, old.Path)
	server := testenv.ChildOf(t, agent.Cmd.Process.Pid)
	started := testenv.ProcessStart(t, server)

	// Paced by a rollout as the chart's (canaries first): an in-place upgrade goes through it.
	opts := operator.Options{AgentImage: "operator:2", Agent: next.Release(t), AgentAddress: ref.address,
		Rollout: &rollout.Policy{Canaries: 1, MaxConcurrent: 1, ReadyTimeout: time.Minute}}
	own := opts.Agent
	m := u.startWith(t, opts)
	defer m.Stop()
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, types.NamespacedName{Namespace: u.ns, Name: "ledger-0"}, pod); err != nil {
			return err
		}
		if a := pod.Annotations; a[instance.AnnotationAgentVersion] != "new" || a[instance.AnnotationAgentDigest] != own.Info.Digest ||
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
	if now := testenv.ChildOf(t, agent.Cmd.Process.Pid); now != server || testenv.ProcessStart(t, now) != started {
		t.Fatalf("the server restarted: pid %d, was %d", now, server)
	}

	before := m.Writes.Count()
	r := &instance.Reconciler{Client: m.Manager.GetClient(), Scheme: m.Manager.GetScheme(), Engine: agentPods{}, AgentImage: "operator:2",
		Agent: own, AgentAddress: ref.address, Recorder: m.Manager.GetEventRecorder("agents-test")}
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

// A new agent that does not survive taking over (here a release whose agent fails at once, though
// its version command works) costs its pod one restart and no more: the kubelet restarts the
// container with the agent the pod started with, and the operator sends nothing to it again, nor
// restarts the pod onto it (its template keeps the agent it runs). The instance says so.
func TestANewAgentThatDoesNotSurviveIsNotSentAgain(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on $PATH: run `make test` (it installs it), or apt-get install redis-server")
	}
	old := agenttest.Build(t, "old")
	broken := agenttest.BuildBroken(t, "broken")
	u := upgrade(t, nil)
	ctx, c := context.Background(), u.c
	pod := agentPod(t, u, "containerd://first")
	ref := newReferenceAgent(t, u)
	first := ref.start(t, old.Path)
	server := testenv.ChildOf(t, first.Cmd.Process.Pid)

	m := u.startWith(t, operator.Options{AgentImage: "operator:2", Agent: broken.Release(t), AgentAddress: ref.address})
	defer m.Stop()
	select {
	case <-first.Done():
	case <-time.After(time.Minute):
		t.Fatal("the agent did not hand over to the broken release")
	}
	// The kubelet's part: the container ends with its PID 1, the server with it, and the container
	// starts again with the pod's agent.
	_ = syscall.Kill(server, syscall.SIGKILL)
	testenv.Eventually(t, time.Minute, func() error {
		if syscall.Kill(server, 0) == nil {
			return fmt.Errorf("the server %d still runs", server)
		}
		return nil
	})
	testenv.Eventually(t, time.Minute, func() error { // the operator annotates the pod meanwhile
		if err := get(t, c, pod, u.ns, "ledger-0"); err != nil {
			return err
		}
		pod.Status.ContainerStatuses[0].ContainerID = "containerd://second"
		return c.Status().Update(ctx, pod)
	})
	second := ref.start(t, old.Path)

	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, time.Minute, func() error {
		if err := get(t, c, si, u.ns, "ledger"); err != nil {
			return err
		}
		p := si.Status.PendingRestarts
		if len(p) != 1 || p[0].Reason != instance.ReasonAgentUpgradeFailed || !strings.Contains(p[0].Message, "did not survive taking over on ledger-0") {
			return fmt.Errorf("pending restarts %+v", p)
		}
		return nil
	})
	// Nothing more is sent: the restarted agent goes on running (the broken one would end it).
	time.Sleep(10 * time.Second)
	if done, err := second.Exited(); done {
		t.Fatalf("the restarted agent was replaced again and ended: %v", err)
	}
	if err := get(t, c, pod, u.ns, "ledger-0"); err != nil {
		t.Fatal(err)
	}
	if got := pod.Annotations[instance.AnnotationAgentSent]; got != broken.Digest+"@containerd://first" {
		t.Fatalf("%s = %q", instance.AnnotationAgentSent, got)
	}
	if image, sts := agentImage(t, c, u.ns, "ledger"); image != "operator:1" || sts.ResourceVersion != u.sts.ResourceVersion {
		t.Fatalf("the StatefulSet changed (agent image %q)", image)
	}
}

// agentPod is the instance's pod as the StatefulSet controller makes it from the live template,
// reported running on loopback in container.
func agentPod(t *testing.T, u *upgraded, container string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ledger-0", Namespace: u.ns, Labels: u.sts.Spec.Template.Labels},
		Spec: u.sts.Spec.Template.Spec}
	if err := u.c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: pod.Spec.Containers[0].Name, Ready: true, ContainerID: container,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	if err := u.c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// referenceAgent is the pod's agent: the reference engine's, with a Redis server, its files in
// dir, with the certificate the operator issued to the instance's agents, serving at addr.
type referenceAgent struct {
	dir, addr string
	port      int
	tls       *agenttest.Instance
}

func newReferenceAgent(t *testing.T, u *upgraded) *referenceAgent {
	t.Helper()
	var secret corev1.Secret
	testenv.Eventually(t, time.Minute, func() error {
		return u.c.Get(context.Background(), types.NamespacedName{Namespace: u.ns, Name: certs.AgentSecretName("ledger")}, &secret)
	})
	dir := t.TempDir()
	files := map[string]string{filepath.Join(dir, "config", "redis.conf"): "", filepath.Join(dir, "secret", "password"): "agents-test-secret"}
	for _, k := range []string{certs.CertKey, certs.KeyKey, certs.CAKey} {
		files[filepath.Join(dir, "tls", k)] = string(secret.Data[k])
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &referenceAgent{dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), port: testenv.FreePort(t),
		tls: &agenttest.Instance{Dir: filepath.Join(dir, "tls")}}
}

// address is where the operator finds the pod's agent.
func (a *referenceAgent) address(*corev1.Pod) string { return a.addr }

// start runs the agent from bin until it has started its server.
func (a *referenceAgent) start(t *testing.T, bin string) *agenttest.Process {
	t.Helper()
	p := a.tls.StartProcess(t, agenttest.Command{Bin: bin, Engine: "reference", Addr: a.addr, Args: []string{
		"--config-dir=" + filepath.Join(a.dir, "config"), "--secret-dir=" + filepath.Join(a.dir, "secret"),
		"--data-dir=" + filepath.Join(a.dir, "data"), "--run-dir=" + filepath.Join(a.dir, "run"),
		"--port=" + strconv.Itoa(a.port), "--bind=127.0.0.1"}})
	testenv.Eventually(t, time.Minute, func() error {
		if done, err := p.Exited(); done {
			t.Fatalf("the agent ended: %v", err)
		}
		if len(testenv.Children(p.Cmd.Process.Pid)) != 1 {
			return fmt.Errorf("the agent has not started its server yet")
		}
		return nil
	})
	return p
}
