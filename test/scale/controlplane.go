package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The users each component of the control plane talks to the API server as: the audit log
// counts writes by user.
const (
	userOperator   = "datafleet-operator"
	userController = "kube-controller-manager"
	userScheduler  = "kube-scheduler"
	userKwok       = "kwok"
	userHarness    = "scale-harness"
)

// Fake pods' addresses: kwok gives each node a part of podRange; the stand-in answers at all of
// them (a local route to the loopback device, added by standIn).
const (
	podRange  = "198.18.128.0/17"
	fakeNodes = 20
	// podsPerNode is each fake node's capacity: 10,000 instances of one pod fit on 20 nodes.
	podsPerNode = 1000
	// fakeNodeLabel marks the nodes kwok plays.
	fakeNodeAnnotation = "kwok.x-k8s.io/node"
	// storageClass is the default StorageClass, whose claims the harness's stand-in provisioner
	// binds.
	storageClass = "scale"
)

// controlPlane is a kubelet-less cluster: etcd and kube-apiserver (envtest, with an audit log of
// every write), kube-controller-manager (StatefulSets, the garbage collector, volume binding and
// protection, namespaces, service accounts, disruption budgets), kube-scheduler, and kwok playing the nodes and their pods.
type controlPlane struct {
	env      *testenv.Env
	dir      string
	auditLog string
	// kubeconfigs by user.
	kubeconfigs map[string]string
	// restart kills a component that start started, by name, and starts it again.
	restart map[string]func() error
}

// startControlPlane starts it and stops it when the test ends. A missing binary fails the test
// with how to get it.
func startControlPlane(tb testing.TB) *controlPlane {
	tb.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	kwok := kwokBinary(tb)
	for _, b := range []string{"kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			tb.Fatalf("%s not found in KUBEBUILDER_ASSETS=%s: run `make test` or `make envtest-assets` (hack/k8s-binaries.sh builds it)", b, assets)
		}
	}
	cp := &controlPlane{dir: tb.TempDir(), kubeconfigs: map[string]string{}, restart: map[string]func() error{}}
	cp.auditLog = filepath.Join(cp.dir, "audit.log")
	policy := filepath.Join(cp.dir, "audit-policy.yaml")
	// Writes only, at Metadata: who wrote what, and the answer's code.
	if err := os.WriteFile(policy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Metadata
`), 0o600); err != nil {
		tb.Fatal(err)
	}
	// A directory of its own (not one envtest makes and forgets on Stop) keeps the serving
	// certificate across restartAPIServer, so that every client's kubeconfig stays valid.
	apiserverDir := filepath.Join(cp.dir, "kube-apiserver")
	if err := os.Mkdir(apiserverDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	cp.env = testenv.StartConfigured(tb, func(e *envtest.Environment) {
		e.ControlPlane.GetAPIServer().CertDir = apiserverDir
		args := e.ControlPlane.GetAPIServer().Configure()
		args.Set("audit-log-path", cp.auditLog)
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-format", "json")
		args.Set("audit-log-maxsize", "0")
		// The operator and kwok at 10,000 instances want more than the default 400+200.
		args.Set("max-requests-inflight", "2000")
		args.Set("max-mutating-requests-inflight", "1000")
	})
	for _, u := range []string{userOperator, userController, userScheduler, userKwok} {
		au, err := cp.env.Env.ControlPlane.AddUser(envtest.User{Name: u, Groups: []string{"system:masters"}}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		kc, err := au.KubeConfig()
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(cp.dir, u+".kubeconfig")
		if err := os.WriteFile(p, kc, 0o600); err != nil {
			tb.Fatal(err)
		}
		cp.kubeconfigs[u] = p
	}
	cp.start(tb, "kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig", cp.kubeconfigs[userController], "--leader-elect=false", "--secure-port=0",
		"--controllers=statefulset,garbagecollector,persistentvolume-binder,pvc-protection,pv-protection,namespace,serviceaccount,disruption",
		"--concurrent-statefulset-syncs=20", "--concurrent-gc-syncs=50",
		"--kube-api-qps=500", "--kube-api-burst=1000")
	cp.start(tb, "kube-scheduler", filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig", cp.kubeconfigs[userScheduler], "--leader-elect=false", "--secure-port=0",
		"--kube-api-qps=500", "--kube-api-burst=1000")
	kwokArgs := []string{"--kubeconfig", cp.kubeconfigs[userKwok], "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", fakeNodeAnnotation + "=fake",
		"--cidr", podRange, "--node-ip", "198.18.127.1", "--server-address", ""}
	for _, stage := range kwokStages(tb, kwok) {
		kwokArgs = append(kwokArgs, "--config", stage)
	}
	cp.objects(tb)
	cp.start(tb, "kwok", kwok, kwokArgs...)
	cp.waitNodes(tb)
	return cp
}

// start runs a component until the test ends, its output in its own file of the test's
// directory (shown when the test fails).
func (cp *controlPlane) start(tb testing.TB, name, bin string, args ...string) {
	tb.Helper()
	out, err := os.Create(filepath.Join(cp.dir, name+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	var cmd *exec.Cmd
	run := func() error {
		cmd = exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = dieWithHarness
		return cmd.Start()
	}
	if err := run(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	cp.restart[name] = func() error {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return run()
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = out.Close()
		if tb.Failed() {
			if b, err := os.ReadFile(out.Name()); err == nil && len(b) > 0 {
				tail := b[max(0, len(b)-1500):]
				tb.Logf("%s's last output:\n%s", name, tail)
			}
		}
	})
}

// restartAPIServer stops kube-apiserver, leaves it down for down and starts it again on the same
// address with the same certificates, etcd running throughout: what a control-plane upgrade or a
// crash does to its clients (the operator, kwok, the stand-in, the test; the controller-manager
// and the scheduler start again with it, below).
func (cp *controlPlane) restartAPIServer(tb testing.TB, down time.Duration) {
	tb.Helper()
	s := cp.env.Env.ControlPlane.GetAPIServer()
	// SIGTERM, then SIGKILL after 3 s (it does not finish its graceful shutdown with this many
	// watches open in envtest's 20 s): Stop's error is that SIGKILL. Down is when nothing answers.
	s.StopTimeout = 3 * time.Second
	_ = s.Stop()
	addr := net.JoinHostPort(s.SecureServing.Address, s.SecureServing.Port)
	testenv.Eventually(tb, 30*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return fmt.Errorf("kube-apiserver still answers at %s after it was killed", addr)
	})
	time.Sleep(down)
	if err := s.Start(); err != nil { // returns once it answers /healthz
		tb.Fatalf("starting kube-apiserver again: %v", err)
	}
	// In a cluster the controller-manager and the scheduler elect a leader, and an outage longer
	// than their renew deadline (10 s) ends them: they exit and start again with fresh caches.
	// Here they run without leader election, so they restart with the API server. Left running
	// they did not recover in the time of the test: kube-scheduler (1.37) logged "Scheduler cache
	// is corrupted" and scheduled no pod again; the StatefulSet controller, still holding a
	// StatefulSet the operator had deleted, made its claim and pod again 20 s after the deletion.
	// kwok carries on through it.
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		if err := cp.restart[name](); err != nil {
			tb.Fatalf("starting %s again: %v", name, err)
		}
	}
	// Back means serving the CRDs again, which it does a moment after /healthz.
	testenv.Eventually(tb, 30*time.Second, func() error {
		if err := cp.env.Client.List(context.Background(), &v1alpha1.ServiceInstanceList{}, client.Limit(1)); err != nil {
			return fmt.Errorf("kube-apiserver serves no ServiceInstances since it started again: %w", err)
		}
		return nil
	})
}

// objects creates what a cluster has before an operator arrives: nodes for kwok (before kwok
// starts: nothing else writes them meanwhile), a default StorageClass.
func (cp *controlPlane) objects(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	c := cp.env.Client
	for i := range fakeNodes {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("fake-%02d", i),
			Annotations: map[string]string{fakeNodeAnnotation: "fake"},
			Labels:      map[string]string{"type": "kwok", corev1.LabelHostname: fmt.Sprintf("fake-%02d", i), corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%3)},
		}}
		if err := c.Create(ctx, n); err != nil {
			tb.Fatal(err)
		}
		// The API server taints a new node not-ready; the node lifecycle controller, which does
		// not run here (no kubelet heartbeats to watch), would lift it once kwok makes it Ready.
		n.Spec.Taints = nil
		if err := c.Update(ctx, n); err != nil {
			tb.Fatal(err)
		}
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1000"),
			corev1.ResourceMemory: resource.MustParse("4Ti"),
			corev1.ResourcePods:   *resource.NewQuantity(podsPerNode, resource.DecimalSI),
		}
		n.Status = corev1.NodeStatus{Capacity: capacity, Allocatable: capacity}
		if err := c.Status().Update(ctx, n); err != nil {
			tb.Fatal(err)
		}
	}
	immediate := storagev1.VolumeBindingImmediate
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: storageClass, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       provisionerName,
		VolumeBindingMode: &immediate,
	}
	if err := c.Create(ctx, sc); err != nil {
		tb.Fatal(err)
	}
}

// waitNodes waits until kwok made every node Ready.
func (cp *controlPlane) waitNodes(tb testing.TB) {
	tb.Helper()
	ctx, c := context.Background(), cp.env.Client
	deadline := time.Now().Add(time.Minute)
	for {
		nodes := &corev1.NodeList{}
		if err := c.List(ctx, nodes, client.MatchingLabels{"type": "kwok"}); err != nil {
			tb.Fatal(err)
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready == fakeNodes {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kwok made %d of %d nodes Ready in a minute", ready, fakeNodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dieWithHarness kills a process the harness started when the harness dies, killed or not.
var dieWithHarness = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

// kwokBinary is kwok from the cache (hack/go-tool.sh builds it).
func kwokBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("KWOK"); p != "" {
		return p
	}
	// The Makefile's KWOK_VERSION.
	p := filepath.Join(cacheDir(), "bin", "kwok-"+kwokVersion)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("no kwok at %s: run `make bench-scale` or `make test` (they build it), or `hack/go-tool.sh sigs.k8s.io/kwok/cmd/kwok %s`, or set KWOK", p, kwokVersion)
	}
	return p
}

// kwokStages are the stages kwok plays, as kwok publishes them in its module (read from the Go
// module cache, where building kwok put them): nodes become Ready, pods Running and Ready with an
// address, deleted pods go. No heartbeat: no node lifecycle controller runs to miss one.
func kwokStages(tb testing.TB, kwok string) []string {
	tb.Helper()
	// "kwok version v0.8.0 go1.26.8 (linux/amd64)"
	out, err := exec.Command(kwok, "--version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 {
		tb.Fatalf("%s --version: %v: %s", kwok, err, out)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/kwok@"+f[2])
	cmd.Dir = tb.TempDir() // outside this module
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err = cmd.Output()
	if err != nil {
		tb.Fatalf("finding kwok's stages: go mod download sigs.k8s.io/kwok@%s: %v", f[2], err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		tb.Fatalf("finding kwok's stages: go mod download said %s", out)
	}
	stages := filepath.Join(mod.Dir, "kustomize", "stage")
	return []string{
		filepath.Join(stages, "node", "fast", "node-initialize.yaml"),
		filepath.Join(stages, "pod", "fast", "pod-ready.yaml"),
		filepath.Join(stages, "pod", "fast", "pod-complete.yaml"),
		filepath.Join(stages, "pod", "fast", "pod-delete.yaml"),
	}
}

// kwokVersion is the kwok the Makefile builds.
const kwokVersion = "v0.8.0"

func cacheDir() string {
	if d := os.Getenv("DATAFLEET_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "datafleet")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "datafleet")
}
