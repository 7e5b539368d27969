// Package agenttest gives tests an instance's agent certificates: a new CA, the agents'
// certificate in a directory (as a pod mounts it) and the operator's Dialer, so that tests reach
// real agents over the same mutual TLS as the operator does.
package agenttest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/promtest"
)

// Instance is one instance's agent credentials.
type Instance struct {
	CA *certs.Authority
	// Dir holds tls.crt, tls.key and ca.crt, as certs.AgentSecretName mounted in a pod.
	Dir string
	// Operator reaches the agents with the operator's client certificate.
	Operator fwagent.Dialer
	// CertPEM and KeyPEM are the agents' certificate and key.
	CertPEM, KeyPEM []byte
}

// New makes a CA and writes the agents' certificate into a temporary directory.
func New(t testing.TB) *Instance {
	t.Helper()
	now := time.Now()
	ca, err := certs.NewAuthority("agenttest CA", now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueAgent(now)
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t, "agenttest-tls-")
	for name, b := range map[string][]byte{certs.CertKey: certPEM, certs.KeyKey: keyPEM, certs.CAKey: ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	op, err := certs.OperatorDialer(&certs.Trust{CA: ca, Bundle: ca.CertPEM}, now)
	if err != nil {
		t.Fatal(err)
	}
	return &Instance{CA: ca, Dir: dir, Operator: op, CertPEM: certPEM, KeyPEM: keyPEM}
}

// Listen is where an agent of this instance serves at addr.
func (i *Instance) Listen(addr string) fwagent.Listen {
	return fwagent.Listen{Addr: addr, TLSDir: i.Dir}
}

// At is the agent at addr, reached as the operator.
func (i *Instance) At(addr string) fwagent.Conn { return i.Operator.At(addr) }

// sharedDir is a temporary directory other users may read: an agent process may run as the
// engine's user (StartProcess), and t.TempDir's parent is root's alone.
func sharedDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// AgentBin is the agents' main package for tests: "agentbin <engine> [flags]".
const AgentBin = "github.com/datafleet-dev/datafleet/test/agentbin"

// Binary is a build of AgentBin.
type Binary struct{ Path, Version, Digest string }

// Build compiles AgentBin with fwagent.Version set to version: two builds with different
// versions are two binaries, as two operator releases are.
func Build(t testing.TB, version string) Binary {
	t.Helper()
	return build(t, version, "")
}

// BuildBroken is AgentBin built as version, whose agent fails as soon as it starts while its
// version command works: a release that passes an agent's trial run and dies taking over.
func BuildBroken(t testing.TB, version string) Binary {
	t.Helper()
	return build(t, version, "-X main.broken="+version)
}

// Releases builds AgentBin twice, as versions "old" and "new": an agent, and the release that
// replaces it in place.
func Releases(t testing.TB) (old, next Binary) {
	t.Helper()
	return Build(t, "old"), Build(t, "new")
}

func build(t testing.TB, version, ldflags string) Binary {
	t.Helper()
	out := filepath.Join(sharedDir(t, "agenttest-bin-"), "agent-"+version)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags",
		strings.TrimSpace("-X github.com/datafleet-dev/datafleet/framework/agent.Version="+version+" "+ldflags), AgentBin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", AgentBin, err, b)
	}
	digest, err := fwagent.Digest(out)
	if err != nil {
		t.Fatal(err)
	}
	return Binary{Path: out, Version: version, Digest: digest}
}

// Release is b as the operator's own binary (operator.Options.Agent).
func (b Binary) Release(t testing.TB) *fwagent.Release {
	t.Helper()
	r, err := fwagent.ReleaseOf(b.Path, b.Version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Process is an agent running in a process of its own, as PID 1 of a pod runs it.
type Process struct {
	Cmd *exec.Cmd
	// Conn reaches it as the operator does.
	Conn fwagent.Conn
	// peer reaches it as another member's agent does.
	peer   fwagent.Conn
	exited chan struct{}
	err    error
}

// Command is how StartProcess runs an agent binary.
type Command struct {
	// Bin is the binary (Build), Engine its engine, Addr where it serves.
	Bin, Engine, Addr string
	// Args are the engine's flags (fwagent.Flags).
	Args []string
	// Owner runs the process as the engine's user; nil as the test's.
	Owner *syscall.Credential
	// Env is added to the test's environment.
	Env []string
}

// StartProcess runs "Bin Engine --http-address=Addr --agent-tls-dir=… Args…" with this
// instance's certificate and no metrics endpoint; the test's end stops it as the kubelet would.
func (i *Instance) StartProcess(t testing.TB, c Command) *Process {
	t.Helper()
	cmd := exec.Command(c.Bin, append([]string{c.Engine, "--http-address=" + c.Addr, "--" + fwagent.FlagTLSDir + "=" + i.Dir}, c.Args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// No metrics endpoint unless c.Env asks for one: agents run side by side here, and the
	// default port would be taken by the first.
	cmd.Env = append(append(os.Environ(), fwagent.EnvMetricsAddress+"="), c.Env...)
	if c.Owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.Owner}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, Conn: i.At(c.Addr), peer: agentruntime.PeerDialer(i.Dir).At(c.Addr), exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// Done is closed when the process has ended; Err says how.
func (p *Process) Done() <-chan struct{} { return p.exited }

// Err is how the process ended, once Done is closed.
func (p *Process) Err() error { return p.err }

// Exited reports whether the process ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends the kubelet's stop signal and waits a minute for the process to end.
func (p *Process) Stop() error {
	if done, _ := p.Exited(); done {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(time.Minute):
		_ = p.Cmd.Process.Kill()
		return fmt.Errorf("the agent (pid %d) did not stop within a minute of SIGTERM", p.Cmd.Process.Pid)
	}
}

// WaitFor waits up to a minute until the agent serves, ready, as b.
func (p *Process) WaitFor(t testing.TB, b Binary) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		if done, err := p.Exited(); done {
			t.Fatalf("the agent's process ended: %v", err)
		}
		if last = p.serves(b.Version, b.Digest); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the agent does not serve as %s (%s) within a minute: %v", b.Version, b.Digest, last)
}

func (p *Process) serves(version, digest string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := p.Conn.Agent(ctx)
	if err != nil {
		return err
	}
	if info.Version != version || info.Digest != digest || !info.Replaceable {
		return fmt.Errorf("the agent reports %+v", info)
	}
	st, err := p.Conn.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Ready {
		return fmt.Errorf("not ready: %s", st.Detail)
	}
	return nil
}

// Upgrade replaces the running agent with next as the operator does, and waits until the new
// one serves. First it checks that the agent refuses a binary
// whose digest is not the announced one, and a binary from a peer agent (whose certificate
// every pod of the instance holds), and runs on. The agent keeps its PID: it executed the new
// binary in its own place, under its old name.
func (p *Process) Upgrade(t testing.TB, next Binary) {
	t.Helper()
	digest, size := next.Digest, next.Release(t).Size
	send := func(c fwagent.Conn, digest string) error {
		f, err := os.Open(next.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return c.Upgrade(context.Background(), f, size, digest)
	}
	comm := func() string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	name := comm()
	other := strings.Repeat("0f", 32)
	if err := send(p.Conn, other); err == nil || !strings.Contains(err.Error(), "not "+other) {
		t.Fatalf("a binary under another digest: err = %v, want a digest mismatch", err)
	}
	if err := send(p.peer, digest); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a binary from a peer agent: err = %v, want 403 Forbidden", err)
	}
	if err := send(p.Conn, digest); err != nil {
		t.Fatal(err)
	}
	// The first status the new agent answers is ready: the pod never leaves its Service's
	// endpoints for an upgrade (what the old agent knew, it handed over).
	deadline := time.Now().Add(time.Minute)
	for {
		if done, err := p.Exited(); done {
			t.Fatalf("the agent's process ended during the upgrade: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := p.Conn.Agent(ctx)
		if err == nil && info.Digest == digest {
			st, err := p.Conn.Status(ctx)
			cancel()
			if err != nil || !st.Ready {
				t.Fatalf("the new agent's first status: %+v, %v; want ready", st, err)
			}
			break
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("the new agent does not serve within a minute: %+v, %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.WaitFor(t, next)
	if now := comm(); now != name {
		t.Fatalf("the agent's process is named %q after the upgrade, %q before: ps and the e2e find it by name", now, name)
	}
}

// StopsItsServer sends the kubelet's stop signal and checks that the agent ends and takes the
// engine's process (server, a PID) with it: an agent that adopted a running server supervises it
// as if it had started it.
func (p *Process) StopsItsServer(t testing.TB, server int) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(server, 0); err == nil {
		t.Fatalf("the engine's process %d still runs after its agent stopped", server)
	}
}

// ScrapeToken gives the instance's agents token's sha256 as the scrape token, as the operator
// writes it into the agents' Secret.
func (i *Instance) ScrapeToken(t testing.TB, token string) {
	t.Helper()
	sum := sha256.Sum256([]byte(token))
	if err := os.WriteFile(filepath.Join(i.Dir, fwagent.MetricsTokenKey), []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ErrScrapeRefused is Scrape's error when the agent answered but not with metrics.
var ErrScrapeRefused = errors.New("scrape refused")

// Scrape reads the metrics of the instance's agent whose metrics endpoint is at addr, presenting
// token as a scraper does and verifying the agent's certificate against the instance's CA.
func (i *Instance) Scrape(ctx context.Context, addr, token string) (promtest.Families, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(i.CA.CertPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: fwagent.ServerName}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+fwagent.PathMetrics, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("%w: %s: %s", ErrScrapeRefused, resp.Status, strings.TrimSpace(string(b)))
	}
	return promtest.Parse(resp.Body)
}
