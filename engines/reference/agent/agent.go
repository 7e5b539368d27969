// Package agent is the reference engine's side of the instance agent: the part of an engine that
// runs in its pods, as PID 1, beside the server. It implements only what every agent must
// (fwagent.Engine): prepare the files before the server starts (Bootstrap), start it (Command),
// stop it (StopSignal) and say whether it serves (Status). The framework's runtime
// (framework/agent/agentruntime) does the rest: it supervises the process, serves /status,
// /healthz and /readyz to the operator over mutual TLS, and forwards the container's stop signal.
//
// An engine that needs more opts in with the interfaces in framework/agent/contract.go: a
// Controller for a control loop beside the server (engines/postgres: the primary lease), a
// Reloader to apply changed files without a restart (engines/postgres), an Actor for operations
// the operator asks for (engines/mongodb: step down), a Streamer for backups (all three). Every
// engine should be an Adopter (this one is: AgentDir, Handover, Adopt below), so that an operator
// upgrade replaces its agent without restarting its server (upgrade_test.go shows how to prove it).
package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
)

// Engine is the reference agent: one Redis server.
type Engine struct {
	Args Args
}

var (
	_ fwagent.DataVolume = (*Engine)(nil)
	_ fwagent.Engine     = (*Engine)(nil)
	_ fwagent.Adopter    = (*Engine)(nil)
)

// DataDir implements fwagent.DataVolume.
func (e *Engine) DataDir() string { return e.Args.DataDir }

// statusTimeout bounds one Status: the runtime asks often, and a server that hangs must read as
// not ready, not block the agent.
const statusTimeout = 2 * time.Second

// Bootstrap implements fwagent.Engine: it assembles the configuration the server starts with. It
// runs at every container start, so it rewrites the file rather than editing it. The password
// goes in a file only the server's user reads, never on the command line (other processes in the
// pod can read that).
func (e *Engine) Bootstrap(context.Context) error {
	a := e.Args
	for _, d := range []string{a.RunDir, a.DataDir} {
		if err := agentruntime.MkdirOwned(d, nil); err != nil {
			return err
		}
	}
	password, err := e.password()
	if err != nil {
		return err
	}
	return agentruntime.WriteFileOwned(e.configPath(), []byte(assemble(a, password)), 0o600, nil)
}

// assemble is the server's configuration: what the tenant chose (the ConfigMap, validated by the
// engine) first, then what the operator owns. Redis keeps the last value of a repeated setting, so
// the operator's lines win even over a ConfigMap edited by hand.
func assemble(a Args, password string) string {
	return strings.Join([]string{
		"include " + filepath.Join(a.ConfigDir, ConfigFile),
		"bind " + a.Bind,
		"port " + strconv.Itoa(a.Port),
		"dir " + a.DataDir,
		"daemonize no",
		// Every write goes to the append-only file before it is acknowledged to the second.
		"appendonly yes",
		"requirepass " + password,
	}, "\n") + "\n"
}

func (e *Engine) configPath() string { return filepath.Join(e.Args.RunDir, ConfigFile) }

func (e *Engine) password() (string, error) {
	b, err := os.ReadFile(filepath.Join(e.Args.SecretDir, PasswordKey))
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if p := strings.TrimSpace(string(b)); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("the password file %s is empty", filepath.Join(e.Args.SecretDir, PasswordKey))
}

// AgentDir implements fwagent.Adopter: the run directory, the pod's own scratch space.
func (e *Engine) AgentDir() string { return e.Args.RunDir }

// Handover implements fwagent.Adopter: this agent has no control loop, so nothing to hand over.
func (e *Engine) Handover() ([]byte, error) { return nil, nil }

// Adopt implements fwagent.Adopter: the agent keeps nothing in memory that Bootstrap computed (the
// password is read at each Status), so a running server needs only its configuration in place.
func (e *Engine) Adopt(context.Context, []byte) error {
	_, err := os.Stat(e.configPath())
	return err
}

// Command implements fwagent.Engine: the server in the foreground, found on $PATH (Debian's and
// the official images both have it there).
func (e *Engine) Command() *exec.Cmd {
	cmd := exec.Command("redis-server", e.configPath())
	cmd.Dir = e.Args.RunDir
	return cmd
}

// StopSignal implements fwagent.Engine: on SIGTERM Redis flushes the append-only file and exits.
func (e *Engine) StopSignal() os.Signal { return syscall.SIGTERM }

// Status implements fwagent.Engine: the server serves when it answers PING after logging in with
// the Secret's password. It answers "-LOADING" while it replays the append-only file.
func (e *Engine) Status(ctx context.Context) fwagent.Status {
	password, err := e.password()
	if err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	replies, err := Do(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Args.Port)), []string{"AUTH", password}, []string{"PING"})
	switch {
	case err != nil:
		return fwagent.Status{Detail: "the server does not answer yet: " + err.Error()}
	case replies[0] != "+OK":
		return fwagent.Status{Detail: "the server refuses the Secret's password: " + replies[0]}
	case replies[1] != "+PONG":
		return fwagent.Status{Detail: "the server is not serving yet: " + replies[1]}
	}
	return fwagent.Status{Ready: true, Role: RoleServer}
}

// maxReply bounds a bulk reply Do reads: what the agent reads from the server is bounded too.
const maxReply = 1 << 20

// Do sends commands to the server at addr, within statusTimeout, and returns each reply: a simple
// string, an error or an integer as its line ("+OK", "-NOAUTH …", ":1"), a bulk string as its
// contents, anything else (an array) as its first line. It is enough for Status and for tests; a
// real engine uses its server's client library.
func Do(ctx context.Context, addr string, commands ...[]string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var req strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&req, "*%d\r\n", len(c))
		for _, arg := range c {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(arg), arg)
		}
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return nil, err
	}
	// A line longer than the reader's buffer is an error (bufio.ErrBufferFull), so a misbehaving
	// server cannot make the agent read without end.
	r := bufio.NewReaderSize(conn, 4096)
	replies := make([]string, 0, len(commands))
	for range commands {
		b, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line := strings.TrimRight(string(b), "\r\n")
		if n, ok := strings.CutPrefix(line, "$"); ok {
			size, err := strconv.Atoi(n)
			switch {
			case err != nil || size > maxReply:
				return nil, fmt.Errorf("a bulk reply of %q bytes", n)
			case size < 0:
				line = "" // nil: no such key
			default:
				body := make([]byte, size+2)
				if _, err := io.ReadFull(r, body); err != nil {
					return nil, err
				}
				line = string(body[:size])
			}
		}
		replies = append(replies, line)
	}
	return replies, nil
}
