// Package testenv starts a real kube-apiserver and etcd (controller-runtime envtest) with the
// Datafleet CRDs installed, and a manager running the framework's controllers against it.
package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/operator"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Env is a running API server.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	// Client talks to the API server directly (no cache), as a user would.
	Client client.Client

	stopOnce          sync.Once
	cancelTimeoutStop func() bool
}

// Start starts kube-apiserver and etcd and stops them when the test ends.
func Start(tb testing.TB) *Env {
	tb.Helper()
	e, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Stop)
	return e
}

// StartWithCRDs is Start with the CRDs in dir instead of the chart's (another release's).
func StartWithCRDs(tb testing.TB, dir string) *Env {
	tb.Helper()
	e, err := newEnv(dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Stop)
	return e
}

// StartConfigured is Start with configure applied to the environment before it starts (the
// scale harness gives the API server an audit log).
func StartConfigured(tb testing.TB, configure func(*envtest.Environment)) *Env {
	tb.Helper()
	e, err := newEnv(filepath.Join(RepoRoot(), "charts", "datafleet", "crds"), configure)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Stop)
	return e
}

// New starts kube-apiserver and etcd from KUBEBUILDER_ASSETS with the CRDs installed. A missing
// binary is an error that says how to get it. Call Stop when done.
func New() (*Env, error) {
	return newEnv(filepath.Join(RepoRoot(), "charts", "datafleet", "crds"), nil)
}

func newEnv(crds string, configure func(*envtest.Environment)) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make test` (it builds kube-apiserver and etcd from Go modules once and caches them), " +
			"or export KUBEBUILDER_ASSETS=$(make -s envtest-assets)")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s not found in KUBEBUILDER_ASSETS=%s: run `make envtest-assets` to build it", b, assets)
		}
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logSink()), zap.UseDevMode(true)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
	}
	// The default service range holds ~250 ClusterIPs, too few for the scale benchmark; use one
	// inside 198.18.0.0/15, the range this project's test traffic is confined to.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "198.18.0.0/16")
	if configure != nil {
		configure(env)
	}
	cfg, err := env.Start()
	e := &Env{Env: env, Config: cfg}
	e.cancelTimeoutStop = stopBeforeTimeout(e.stop)
	if err != nil {
		// Start fails after the control plane is up when the CRDs do not install (a CEL rule over
		// its cost budget): stop what it started, or etcd and kube-apiserver outlive the test.
		e.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	// The test's own client must not be the bottleneck of what it measures.
	direct := rest.CopyConfig(cfg)
	direct.QPS, direct.Burst = 2000, 4000
	c, err := client.New(direct, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		e.Stop()
		return nil, err
	}
	e.Client = c
	return e, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() {
	e.cancelTimeoutStop()
	e.stop()
}

// stop stops them once, whoever asks first: the test's cleanup or the timeout's timer.
func (e *Env) stop() {
	e.stopOnce.Do(func() {
		if err := e.Env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	})
}

// WriteCounter counts the mutating requests (anything but GET, LIST and WATCH) a client sends,
// and those the API server refused with 409 Conflict (written from a stale read).
type WriteCounter struct{ n, conflicts atomic.Int64 }

// Count returns the number of writes so far.
func (w *WriteCounter) Count() int64 { return w.n.Load() }

// Conflicts returns the number of writes refused with 409 Conflict so far.
func (w *WriteCounter) Conflicts() int64 { return w.conflicts.Load() }

func (w *WriteCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return rt.RoundTrip(req)
		}
		w.n.Add(1)
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusConflict {
			w.conflicts.Add(1)
		}
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Manager is a running manager.
type Manager struct {
	Manager ctrl.Manager
	// Writes counts every write the manager sends to the API server.
	Writes *WriteCounter
	stop   func()
}

// Manager runs the framework's controllers for the engines, as cmd/manager wires them, with a
// client whose writes are counted. Call Stop when done.
func (e *Env) Manager(engines []engine.Engine, workers int) (*Manager, error) {
	return e.ManagerWith(engines, operator.Options{MaxConcurrentReconciles: workers})
}

// ManagerWith is Manager with all of the operator's options.
func (e *Env) ManagerWith(engines []engine.Engine, opts operator.Options) (*Manager, error) {
	wc := &WriteCounter{}
	cfg := rest.CopyConfig(e.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.Wrap(wc.wrap)
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  engine.NewScheme(),
		Cache:   operator.CacheOptions(engines),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Several managers may start in one test binary; names are unique within each.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := operator.Setup(ctx, mgr, engines, opts); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	m := &Manager{Manager: mgr, Writes: wc, stop: func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintln(os.Stderr, "manager stopped:", err)
			}
		case <-time.After(30 * time.Second):
			fmt.Fprintln(os.Stderr, "manager did not stop within 30s")
		}
	}}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		m.Stop()
		return nil, fmt.Errorf("manager cache did not sync")
	}
	return m, nil
}

// Stop stops the manager and waits for it.
func (m *Manager) Stop() { m.stop() }

// WaitQuiet waits until the manager has sent no write for a second, so that earlier work (other
// tests' instances included) has settled before writes are counted.
func (m *Manager) WaitQuiet(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	last := m.Writes.Count()
	Eventually(tb, timeout, func() error {
		time.Sleep(time.Second)
		if now := m.Writes.Count(); now != last {
			last = now
			return Errorf("manager still writing")
		}
		return nil
	})
}

// MarkStatefulSetReady sets the status the StatefulSet controller and kubelets would report once
// every replica of the current spec runs and is ready. envtest runs neither, so tests play them.
func MarkStatefulSetReady(sts *appsv1.StatefulSet) {
	r := int32(1)
	if sts.Spec.Replicas != nil {
		r = *sts.Spec.Replicas
	}
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: r, ReadyReplicas: r,
		AvailableReplicas: r, UpdatedReplicas: r, CurrentReplicas: r, CurrentRevision: "rev", UpdateRevision: "rev"}
}

// Eventually polls cond every 50ms until it returns nil or timeout passes, then fails with the
// last error. It waits for the state of the world; it asserts nothing about time.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Errorf is fmt.Errorf, for use in Eventually conditions.
var Errorf = fmt.Errorf
