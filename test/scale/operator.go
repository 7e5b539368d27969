package scale

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// agentImage is the operator's own image as the harness names it: no pod pulls it, and agents
// are never asked which binary they run when their pod's agent image is the operator's.
const agentImage = "datafleet.local/operator:scale"

// operatorProcess is the real manager binary (cmd/manager, every engine), run as a host process
// against the control plane, as the operator's Deployment runs it in a cluster.
type operatorProcess struct {
	bin       string
	args, env []string
	out       *os.File
	cmd       *exec.Cmd
	metrics   string
	pprof     string
	log       string
}

// buildManager builds cmd/manager into dir.
func buildManager(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}

// startOperator starts the manager with workers per engine and waits until it serves metrics.
func startOperator(tb testing.TB, cp *controlPlane, bin string, workers int) *operatorProcess {
	tb.Helper()
	metricsPort, probePort, pprofPort := testenv.FreePort(tb), testenv.FreePort(tb), testenv.FreePort(tb)
	log := filepath.Join(cp.dir, "operator.log")
	out, err := os.Create(log)
	if err != nil {
		tb.Fatal(err)
	}
	// SCALE_OPERATOR_GOMEMLIMIT is the operator's GOMEMLIMIT and no other process's: what
	// cmd/manager/memlimit.go sets in a container (0.9 of its memory limit, e.g. 900MiB for 1 GiB).
	p := &operatorProcess{bin: bin, out: out, log: log,
		args: []string{
			"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--metrics-secure=false",
			"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probePort),
			"--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", pprofPort),
			"--agent-image", agentImage, "--max-concurrent-reconciles", strconv.Itoa(workers)},
		env:     append(os.Environ(), "KUBECONFIG="+cp.kubeconfigs[userOperator], "GOMEMLIMIT="+os.Getenv("SCALE_OPERATOR_GOMEMLIMIT")),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		pprof:   fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pprofPort)}
	p.start(tb)
	tb.Cleanup(func() {
		p.stop()
		_ = out.Close()
		if tb.Failed() {
			if b, err := os.ReadFile(log); err == nil {
				tb.Logf("the operator's last output:\n%s", b[max(0, len(b)-6000):])
			}
		}
	})
	return p
}

// start starts the process and waits until it serves metrics.
func (p *operatorProcess) start(tb testing.TB) {
	tb.Helper()
	if err := p.run(); err != nil {
		tb.Fatal(err)
	}
}

// run is start for a goroutine other than the test's.
func (p *operatorProcess) run() error {
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = dieWithHarness
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err := p.metric("go_memstats_heap_inuse_bytes")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator serves no metrics a minute after it started: %w", err)
		}
	}
}

// stop kills the process at once (SIGKILL: no deferred function, no lease released), as the
// kernel's OOM killer or a lost node does.
func (p *operatorProcess) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// metric is the value of an unlabelled metric the operator serves.
func (p *operatorProcess) metric(name string) (float64, error) {
	s, err := p.series(name)
	if err != nil {
		return 0, err
	}
	v, ok := s[""]
	if !ok {
		return 0, fmt.Errorf("%s: no metric %s", p.metrics, name)
	}
	return v, nil
}

// series is every sample the operator serves whose metric name is name (scrape).
func (p *operatorProcess) series(name string) (map[string]float64, error) {
	return scrape(http.DefaultClient, p.metrics, name, 5*time.Second)
}

// saveProfile writes one of the operator's profiles to path, for `go tool pprof`: "heap?gc=1"
// (after a collection), "profile?seconds=60" (CPU).
func (p *operatorProcess) saveProfile(profile, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.pprof+"/"+profile, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// usage is what the kernel says the operator's process holds and has used.
type usage struct {
	// RSS in bytes.
	RSS float64
	// CPU is user and system time.
	CPU time.Duration
}

func (p *operatorProcess) usage() (usage, error) {
	pid := p.cmd.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kib, _ := strconv.ParseFloat(f[1], 64)
			u.RSS = kib * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	// utime and stime are fields 14 and 15, the 12th and 13th after the command.
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	u.CPU = time.Duration((ut + st) / clockTicks * float64(time.Second))
	return u, nil
}

// clockTicks is the kernel's USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100
