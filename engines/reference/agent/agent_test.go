package agent

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

	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// These tests run the agent as a pod runs it, through the framework's runtime, against a real
// Redis server from Debian (make test installs redis-server), on loopback.

func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on $PATH: run `make test` (it installs it), or apt-get install redis-server")
	}
}

// pod lays out the files a pod mounts: the ConfigMap's redis.conf (here with a line a tenant
// could not render, as if the ConfigMap were edited by hand), the Secret's password, and the data
// and run directories.
func pod(t *testing.T, password string) Args {
	t.Helper()
	dir := t.TempDir()
	a := Args{ConfigDir: filepath.Join(dir, "config"), SecretDir: filepath.Join(dir, "secret"), DataDir: filepath.Join(dir, "data"),
		RunDir: filepath.Join(dir, "run"), Port: testenv.FreePort(t), Bind: "127.0.0.1"}
	for _, d := range []string{a.ConfigDir, a.SecretDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(a.ConfigDir, ConfigFile), []byte("maxmemory 64MB\nport 1\nappendonly no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.SecretDir, PasswordKey), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// running is the agent started in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// start runs the agent until the operator, over mutual TLS, sees it ready.
func start(t *testing.T, a Args) *running {
	t.Helper()
	tls := agenttest.New(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- agentruntime.Run(ctx, &Engine{Args: a}, tls.Listen(addr)) }()
	t.Cleanup(func() { r.stop(t) })
	testenv.Eventually(t, time.Minute, func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("the agent ended: %v", err)
		default:
		}
		st, err := tls.At(addr).Status(context.Background())
		if err != nil {
			return err
		}
		if !st.Ready || st.Role != RoleServer {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	return r
}

// stop asks the agent to stop, as the kubelet does, and waits until it has.
func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
	case <-time.After(time.Minute):
		t.Fatal("the agent did not stop")
	}
}

func do(t *testing.T, a Args, commands ...[]string) []string {
	t.Helper()
	replies, err := Do(context.Background(), "127.0.0.1:"+strconv.Itoa(a.Port), commands...)
	if err != nil {
		t.Fatal(err)
	}
	return replies
}

// The server runs with the operator's settings over the tenant's, refuses clients without the
// Secret's password, and keeps an acknowledged write across a stop and a start (the append-only
// file on the data volume).
func TestServesWithTheSecretsPasswordAndKeepsWritesAcrossRestarts(t *testing.T) {
	requireRedis(t)
	a := pod(t, "s3cret-generated")
	r := start(t, a)

	if got := do(t, a, []string{"PING"}); !strings.HasPrefix(got[0], "-NOAUTH") {
		t.Fatalf("PING without the password = %q, want NOAUTH", got)
	}
	if got := do(t, a, []string{"AUTH", "wrong"}); !strings.HasPrefix(got[0], "-WRONGPASS") {
		t.Fatalf("AUTH with another password = %q", got)
	}
	if got := do(t, a, []string{"AUTH", "s3cret-generated"}, []string{"SET", "order:1", "paid"}); got[0] != "+OK" || got[1] != "+OK" {
		t.Fatalf("AUTH, SET = %q", got)
	}
	info := do(t, a, []string{"AUTH", "s3cret-generated"}, []string{"INFO", "memory"}, []string{"INFO", "persistence"})
	if !strings.Contains(info[1], "maxmemory:67108864\r\n") {
		t.Errorf("the tenant's maxmemory was not applied:\n%s", info[1])
	}
	if !strings.Contains(info[2], "aof_enabled:1\r\n") {
		t.Errorf("the tenant's appendonly no won over the operator's:\n%s", info[2])
	}

	r.stop(t)
	if _, err := Do(context.Background(), "127.0.0.1:"+strconv.Itoa(a.Port), []string{"PING"}); err == nil {
		t.Fatal("the server still answers after the agent stopped")
	}
	start(t, a)
	if got := do(t, a, []string{"AUTH", "s3cret-generated"}, []string{"GET", "order:1"}); got[1] != "paid" {
		t.Fatalf("after a restart GET order:1 = %q, want paid", got)
	}
}

// The password is in a file only the server's user reads, not on the command line, which every
// process in the pod can read.
func TestThePasswordStaysOffTheCommandLine(t *testing.T) {
	a := pod(t, "s3cret-generated")
	e := &Engine{Args: a}
	if err := e.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if args := strings.Join(e.Command().Args, " "); strings.Contains(args, "s3cret") {
		t.Fatalf("the command line carries the password: %s", args)
	}
	fi, err := os.Stat(filepath.Join(a.RunDir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the assembled configuration is %v, want 0600", fi.Mode().Perm())
	}
}
