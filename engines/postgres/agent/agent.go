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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/primary"
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
	// Name is this member's name (the pod name): the lease identity and the application_name a
	// replica reports to the primary.
	Name string
	// Lease decides whether this member is the primary. Nil runs a standalone primary.
	Lease *primary.Keeper
	// Peers reaches the other members' agents (agentruntime.PeerDialer), for the lease's failsafe.
	Peers fwagent.Dialer
	// Source is the libpq connection string fragment (host and port, for example
	// "host=orders port=5432") that reaches the current primary: replicas clone from it and
	// stream from it, and a former primary rewinds against it.
	Source string
	// TLSDir holds the server certificate and key (tls.crt, tls.key: a mounted kubernetes.io/tls
	// Secret, with the instance's CA as ca.crt). Empty serves plain TCP only.
	TLSDir string
	// TLSRequired refuses every TCP connection that is not TLS, replication included, and
	// replicates with the primary's certificate verified against ca.crt (sslmode=verify-full).
	TLSRequired bool
	// ReplicationPasswordFile holds the password of the replication user.
	ReplicationPasswordFile string
	// ArchiveConfig is the segment archive's configuration (framework/backup.SegmentConfig): with
	// it the primary archives every completed segment there (archiving.go); empty: no archiving.
	ArchiveConfig string
	// Recovery is a point-in-time restore's configuration (framework/backup.RecoveryConfig): the
	// first primary builds its data from the physical backup and archive it names instead of
	// initdb (recovery.go); empty: initdb.
	Recovery string
	// Manager is the binary archive_command runs ("manager segments push"): the agent's own when
	// empty. Only tests set it, whose agent is the test binary.
	Manager string
	// Credential runs PostgreSQL's processes as another user. Only tests set it: they run as root,
	// which initdb refuses. In a pod the agent already runs as the postgres user.
	Credential *syscall.Credential
}

// Superuser is the role initdb creates; it logs in only through the Unix socket inside the pod.
const Superuser = "postgres"

// pgHBA allows the superuser (and its base backups), a restore's Restorer and the metrics' Monitor through the pod-local socket, no other role
// there (binding users have no business in the pod), and password (SCRAM) logins over TCP: over
// TLS only when tlsRequired ("hostssl"; a connection in clear matches no line and is refused).
// The operator owns this file: it is rewritten on every start.
func pgHBA(tlsRequired bool) string {
	host := "host"
	if tlsRequired {
		host = "hostssl"
	}
	return `# Written by the Datafleet agent on every start; changes here are lost.
local all ` + Superuser + ` trust
local replication ` + Superuser + ` trust
local all ` + Restorer + ` trust
local all ` + Monitor + ` trust
local all all reject
` + host + ` all all 0.0.0.0/0 scram-sha-256
` + host + ` all all ::/0 scram-sha-256
` + host + ` replication ` + ReplicationUser + ` 0.0.0.0/0 scram-sha-256
` + host + ` replication ` + ReplicationUser + ` ::/0 scram-sha-256
`
}

const (
	includeMarker      = "# datafleet: instance parameters"
	agentIncludeMarker = "# datafleet: settings the agent owns"
	// agentConf is written by the agent on every start; relative to the data directory.
	agentConf     = "datafleet.conf"
	standbySignal = "standby.signal"
	// recoverySignal is there while a recovery (a restore to a point in time) has not promoted.
	recoverySignal = "recovery.signal"
)

// Engine runs PostgreSQL under the framework's agent.
type Engine struct {
	Config Config
	// usersMu runs one binding action at a time: two bindings of a new database would otherwise
	// race to create its groups.
	usersMu sync.Mutex
	// restoring counts the restores running (Load), during which binding actions are refused.
	restoring atomic.Int32
	// followMu guards what Follow remembers: the WAL receiver last seen not streaming, and since.
	followMu     sync.Mutex
	stalledPID   int
	stalledSince time.Time
	// archivedThrough follows how far the archive reaches, by the database's clock.
	archivedThrough archivedThrough
}

var (
	_ fwagent.DataVolume = (*Engine)(nil)
	_ fwagent.Engine     = (*Engine)(nil)
	_ fwagent.Controller = (*Engine)(nil)
	_ fwagent.Reloader   = (*Engine)(nil)
	_ fwagent.Adopter    = (*Engine)(nil)
	_ fwagent.Exporter   = (*Engine)(nil)
	_ primary.Member     = (*Engine)(nil)
	_ primary.Peers      = (*Engine)(nil)
)

// DataDir implements fwagent.DataVolume.
func (e *Engine) DataDir() string { return e.Config.DataDir }

func (e *Engine) bin(name string) string {
	if e.Config.BinDir == "" {
		return name
	}
	return filepath.Join(e.Config.BinDir, name)
}

func (e *Engine) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin(name), args...)
	// libpq (a replica's WAL receiver, pg_basebackup, pg_rewind) reads a client certificate from
	// $HOME/.postgresql when the server asks for TLS: HOME is the agent's own directory, where
	// there is none, so an inherited HOME can neither lend one nor fail the connection.
	cmd.Env = append(os.Environ(), "HOME="+e.Config.SocketDir)
	if e.Config.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.Config.Credential}
	}
	return cmd
}

// Bootstrap prepares the data directory: initdb for the first primary, a clone of the primary for
// a new replica, a rewind for a former primary that must follow another one. Then it (re)writes
// the files the operator owns and decides, through the lease, whether postgres starts as primary.
func (e *Engine) Bootstrap(ctx context.Context) error {
	c := e.Config
	if err := e.mkdir(c.SocketDir); err != nil {
		return err
	}
	if err := e.writePassFile(); err != nil {
		return err
	}
	holder, err := e.claim(ctx)
	if err != nil {
		return err
	}
	restore, err := e.inPlaceRestore()
	if err != nil {
		return err
	}
	if restore != "" {
		if err := e.restoreInPlace(ctx, restore); err != nil {
			return err
		}
		// The recovery may have taken longer than the lease: renew it (the operator named this
		// member, and elects no other while none serves).
		if holder, err = e.claim(ctx); err != nil {
			return err
		}
	}
	primary := holder == e.Config.Name
	switch _, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); {
	case errors.Is(err, os.ErrNotExist) && primary:
		if err := e.initdb(ctx); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		if err := e.clone(ctx); err != nil {
			return err
		}
	case err != nil:
		return err
	case !primary:
		_, err := os.Stat(filepath.Join(c.DataDir, standbySignal))
		if err := e.rejoin(ctx, holder, errors.Is(err, os.ErrNotExist)); err != nil {
			return err
		}
	}
	if restore != "" && !primary {
		if err := e.checkCloned(restore); err != nil {
			return err
		}
	}
	if err := e.clearRecovery(); err != nil {
		return err
	}
	if err := e.installCertificate(); err != nil {
		return err
	}
	// pg_basebackup and pg_rewind copy the primary's configuration files: write ours after them.
	if err := e.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(pgHBA(c.TLSRequired))); err != nil {
		return err
	}
	settings, err := e.agentSettings()
	if err != nil {
		return err
	}
	if err := e.writeFile(filepath.Join(c.DataDir, agentConf), []byte(settings)); err != nil {
		return err
	}
	if err := e.ensureIncludes(); err != nil {
		return err
	}
	if primary && e.Config.Lease != nil {
		// Also for data that predates this lease (an instance re-created over retained volumes).
		if err := e.Config.Lease.MarkBootstrapped(ctx); err != nil {
			return err
		}
	}
	return e.setStandby(!primary)
}

// AgentDir implements fwagent.Adopter: the socket directory, the pod's own scratch space.
func (e *Engine) AgentDir() string { return e.Config.SocketDir }

// Handover implements fwagent.Adopter: the primary lease's clocks, so that the next agent fences
// by them (primary.Keeper.Handover).
func (e *Engine) Handover() ([]byte, error) {
	if e.Config.Lease == nil {
		return nil, nil
	}
	return e.Config.Lease.Handover()
}

// Adopt implements fwagent.Adopter: postgres runs with the files Bootstrap wrote, so only what
// the agent itself reads is rewritten (the replication password file, from the Secret), and the
// lease's keeper resumes where the previous agent's stopped. Bootstrap's other steps decide how
// postgres starts, which it did.
func (e *Engine) Adopt(_ context.Context, state []byte) error {
	if err := e.mkdir(e.Config.SocketDir); err != nil {
		return err
	}
	if err := e.writePassFile(); err != nil {
		return err
	}
	if e.Config.Lease == nil {
		return nil
	}
	if len(state) == 0 {
		return errors.New("the previous agent handed over no state of the primary lease")
	}
	return e.Config.Lease.Resume(state)
}

func (e *Engine) initdb(ctx context.Context) error {
	if e.Config.Lease != nil {
		if _, s, err := e.Config.Lease.Get(ctx); err != nil {
			return err
		} else if s.Bootstrapped {
			// The holder lost its volume. A new empty database would replace every replica's data:
			// hand the lease back so that the operator elects a replica with the data instead.
			_ = e.Config.Lease.Release(ctx)
			return errors.New("this member holds the primary lease but has no data, and the instance was bootstrapped before: released the lease; it will rejoin as a replica")
		}
	}
	if e.Config.Recovery != "" {
		return e.recoverFromStore(ctx)
	}
	out, err := e.command(ctx, "initdb", "--pgdata", e.Config.DataDir, "--username", Superuser,
		"--auth-local", "trust", "--auth-host", "scram-sha-256", "--encoding", "UTF8", "--locale", "C",
		"--data-checksums").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// ensureIncludes makes postgresql.conf include the parameters file and then the agent's own file
// (which wins), once each.
func (e *Engine) ensureIncludes() error {
	path := filepath.Join(e.Config.DataDir, "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	orig := len(conf)
	for _, inc := range []struct{ marker, file string }{
		{includeMarker, e.Config.ParametersFile},
		{agentIncludeMarker, agentConf},
	} {
		if inc.file == "" || bytes.Contains(conf, []byte(inc.marker)) {
			continue
		}
		conf = fmt.Appendf(conf, "\n%s\ninclude_if_exists '%s'\n", inc.marker, inc.file)
	}
	if len(conf) == orig {
		return nil
	}
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

func (e *Engine) mkdir(dir string) error { return agentruntime.MkdirOwned(dir, e.Config.Credential) }

func (e *Engine) writeFile(path string, b []byte) error {
	return agentruntime.WriteFileOwned(path, b, 0o600, e.Config.Credential)
}

func (e *Engine) chown(path string) error { return agentruntime.Chown(path, e.Config.Credential) }
