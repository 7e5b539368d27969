// Package agent is PostgreSQL's in-pod agent: it initialises the data directory on first start,
// owns pg_hba.conf and the settings the operator depends on, runs postgres and reports its role.
// It needs only PostgreSQL's own binaries in the image, never an entrypoint script.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/jackc/pgx/v5"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Config says where things are. The operator renders it into the container's arguments.
type Config struct {
	// BinDir holds initdb and postgres; empty means $PATH.
	BinDir string
	// DataDir is PGDATA. Its parent must exist and be writable.
	DataDir string
	// SocketDir holds the Unix socket; the agent connects through it.
	SocketDir string
	// ListenAddresses is listen_addresses: "*" in a pod, loopback in tests.
	ListenAddresses string
	Port            int
	// ParametersFile holds the instance's parameters (rendered by the operator); postgresql.conf
	// includes it if it exists, so a reload picks up its changes.
	ParametersFile string
	// Credential runs PostgreSQL's processes as another user. Only tests set it: they run as root,
	// which initdb refuses. In a pod the agent already runs as the postgres user.
	Credential *syscall.Credential
}

// Superuser is the role initdb creates; it logs in only through the Unix socket inside the pod.
const Superuser = "postgres"

// pgHBA allows the superuser through the pod-local socket and password (SCRAM) logins over TCP.
// The operator owns this file: it is rewritten on every start.
const pgHBA = `# Written by the Datafleet agent on every start; changes here are lost.
local all all trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
`

const includeMarker = "# datafleet: instance parameters"

// Engine runs PostgreSQL under the framework's agent.
type Engine struct{ Config Config }

var _ fwagent.Engine = (*Engine)(nil)

func (e *Engine) bin(name string) string {
	if e.Config.BinDir == "" {
		return name
	}
	return filepath.Join(e.Config.BinDir, name)
}

func (e *Engine) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin(name), args...)
	if e.Config.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.Config.Credential}
	}
	return cmd
}

// Bootstrap initialises the data directory once, then (re)writes the files the operator owns.
func (e *Engine) Bootstrap(ctx context.Context) error {
	c := e.Config
	if err := e.mkdir(c.SocketDir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		out, err := e.command(ctx, "initdb", "--pgdata", c.DataDir, "--username", Superuser,
			"--auth-local", "trust", "--auth-host", "scram-sha-256", "--encoding", "UTF8", "--locale", "C",
			"--data-checksums").CombinedOutput()
		if err != nil {
			return fmt.Errorf("initdb: %w\n%s", err, out)
		}
	} else if err != nil {
		return err
	}
	if err := e.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(pgHBA)); err != nil {
		return err
	}
	return e.ensureInclude()
}

// ensureInclude makes postgresql.conf include the parameters file, once.
func (e *Engine) ensureInclude() error {
	if e.Config.ParametersFile == "" {
		return nil
	}
	path := filepath.Join(e.Config.DataDir, "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.Contains(conf, []byte(includeMarker)) {
		return nil
	}
	conf = fmt.Appendf(conf, "\n%s\ninclude_if_exists '%s'\n", includeMarker, e.Config.ParametersFile)
	return e.writeFile(path, conf)
}

// Command is postgres with the settings the operator relies on given on the command line, where
// neither the parameters file nor ALTER SYSTEM can override them.
func (e *Engine) Command() *exec.Cmd {
	c := e.Config
	return e.command(context.Background(), "postgres", "-D", c.DataDir,
		"-c", "listen_addresses="+c.ListenAddresses, "-c", "port="+strconv.Itoa(c.Port),
		"-c", "unix_socket_directories="+c.SocketDir)
}

// StopSignal asks for a fast shutdown: open transactions are rolled back, the data is consistent.
func (e *Engine) StopSignal() os.Signal { return syscall.SIGINT }

// Status connects through the Unix socket and reports primary or replica.
func (e *Engine) Status(ctx context.Context) fwagent.Status {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	role := "primary"
	if inRecovery {
		role = "replica"
	}
	return fwagent.Status{Ready: true, Role: role}
}

// Connect opens a superuser connection through the Unix socket.
func (e *Engine) Connect(ctx context.Context, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = e.Config.SocketDir, uint16(e.Config.Port), Superuser, database
	return pgx.ConnectConfig(ctx, cfg)
}

func (e *Engine) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return e.chown(dir)
}

func (e *Engine) writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return e.chown(path)
}

func (e *Engine) chown(path string) error {
	if c := e.Config.Credential; c != nil {
		return os.Chown(path, int(c.Uid), int(c.Gid))
	}
	return nil
}
