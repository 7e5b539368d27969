package testenv_test

import (
	"bytes"
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

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// hangEnv, when set, makes TestATimedOutTestLeavesNoControlPlane the test that times out: it
// starts a control plane, writes where it is to the file named, and waits for go test's alarm.
const hangEnv = "TESTENV_HANG_REPORT"

// TestATimedOutTestLeavesNoControlPlane runs this test binary again with a 30 s -timeout, as a test
// that starts envtest and then hangs, and checks once go test's alarm has ended it that its
// kube-apiserver answers no more and no etcd runs on its data directory.
func TestATimedOutTestLeavesNoControlPlane(t *testing.T) {
	if report := os.Getenv(hangEnv); report != "" {
		hang(t, report)
		return
	}
	report := filepath.Join(t.TempDir(), "control-plane")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestATimedOutTestLeavesNoControlPlane$", "-test.timeout", "30s")
	cmd.Env = append(os.Environ(), hangEnv+"="+report)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if !strings.Contains(out.String(), "test timed out after 30s") {
		t.Fatalf("the hanging test ended otherwise than by go test's timeout (%v):\n%s", err, out.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("the hanging test reported no control plane: %v\n%s", err, out.String())
	}
	apiServer, etcdDir, _ := strings.Cut(string(b), "\n")
	_, port, _ := net.SplitHostPort(apiServer)
	if port == "" || etcdDir == "" {
		t.Fatalf("the hanging test's report names no API server or etcd: %q", b)
	}
	if c, err := net.DialTimeout("tcp", apiServer, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("the timed-out test's kube-apiserver still answers at %s", apiServer)
	}
	if etcd := processesNaming(t, etcdDir); len(etcd) > 0 {
		t.Errorf("the timed-out test's etcd still runs on %s (pids %v)", etcdDir, etcd)
	}
	// What this test finds left it ends, so that its own failure leaves nothing running.
	for _, pid := range append(processesNaming(t, etcdDir), processesNaming(t, "--secure-port="+port)...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// hang is the hanging test: it outlives any -timeout.
func hang(t *testing.T, report string) {
	env := testenv.Start(t)
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(report, []byte(u.Host+"\n"+env.Env.ControlPlane.Etcd.DataDir), 0o600); err != nil {
		t.Fatal(err)
	}
	select {}
}

// processesNaming lists the processes whose command line holds s (an etcd's data directory, an
// API server's port flag).
func processesNaming(t *testing.T, s string) []int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
