// Package agent is the RabbitMQ side of the instance agent: it gives the node its Erlang cookie and
// a configuration file assembled from the instance's ConfigMap and Secret, runs rabbitmq-server,
// reports the node ready once it accepts AMQP connections and the operator's administrator logs in
// with the Secret's password, and makes a renewed TLS certificate take effect without a restart.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
)

// Names of the files the agent reads, as the engine's Render mounts them.
const (
	ConfigFile   = "rabbitmq.conf"   // in ConfigDir: settings
	PeersFile    = "peers.conf"      // in ConfigDir: the classic peer-discovery list
	PluginsFile  = "enabled_plugins" // in ConfigDir
	CookieFile   = "cookie"          // in SecretDir: the Erlang cookie
	PasswordFile = "password"        // in SecretDir: the operator's administrator password
)

// Config is where the node's files are.
type Config struct {
	// NodeName is the Erlang node name, rabbit@<host> with a fully qualified host.
	NodeName string
	// User is the administrator the operator uses; its password is in SecretDir.
	User      string
	ConfigDir string
	SecretDir string
	// DataDir holds the node's database (mnesia) and its plugins' expansion.
	DataDir string
	// RunDir is private and writable: the assembled configuration, HOME with the cookie, logs.
	RunDir string
	// TLSDir holds tls.crt, tls.key and ca.crt when TLS is on ("" when off).
	TLSDir string
	// AMQPPort is where the node accepts clients once it runs (5672), and AMQPSPort where it
	// accepts them over TLS (0: no TLS listener).
	AMQPPort, AMQPSPort int
	// BinDir holds rabbitmq-server and rabbitmqctl; "" finds them (see binDir).
	BinDir string
	// Env is added to the server's environment (tests give each node its own ports).
	Env []string
	// Credential runs the server as another user (tests run as root; RabbitMQ is run as rabbitmq).
	Credential *syscall.Credential
}

// Engine is the RabbitMQ agent.
type Engine struct {
	Config Config
	// adminChecked is set once the administrator logs in with the Secret's password (Control).
	adminChecked atomic.Bool
}

var (
	_ fwagent.DataVolume = (*Engine)(nil)
	_ fwagent.Engine     = (*Engine)(nil)
	_ fwagent.Reloader   = (*Engine)(nil)
	_ fwagent.Actor      = (*Engine)(nil)
	_ fwagent.Controller = (*Engine)(nil)
)

// DataDir implements fwagent.DataVolume.
func (e *Engine) DataDir() string { return e.Config.DataDir }

// Bootstrap writes the cookie and the configuration file. Both are rewritten at every start: the
// Secret and the ConfigMap are the truth.
func (e *Engine) Bootstrap(context.Context) error {
	c := e.Config
	for _, d := range []string{c.RunDir, filepath.Join(c.RunDir, "log"), c.DataDir} {
		if err := agentruntime.MkdirOwned(d, c.Credential); err != nil {
			return err
		}
	}
	cookie, err := os.ReadFile(filepath.Join(c.SecretDir, CookieFile))
	if err != nil {
		return fmt.Errorf("reading the Erlang cookie: %w", err)
	}
	// Erlang refuses a cookie file others may read.
	if err := agentruntime.WriteFileOwned(filepath.Join(c.RunDir, ".erlang.cookie"), cookie, 0o400, c.Credential); err != nil {
		return err
	}
	conf, err := e.assemble()
	if err != nil {
		return err
	}
	return agentruntime.WriteFileOwned(e.configPath(), []byte(conf), 0o600, c.Credential)
}

// assemble is the ConfigMap's settings and peer list, and the administrator the operator uses
// (created when the node first starts with an empty database).
func (e *Engine) assemble() (string, error) {
	c := e.Config
	var b strings.Builder
	for _, name := range []string{ConfigFile, PeersFile} {
		data, err := os.ReadFile(filepath.Join(c.ConfigDir, name))
		if err != nil {
			return "", fmt.Errorf("reading the configuration: %w", err)
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	password, err := os.ReadFile(filepath.Join(c.SecretDir, PasswordFile))
	if err != nil {
		return "", fmt.Errorf("reading the administrator's password: %w", err)
	}
	fmt.Fprintf(&b, "default_user = %s\ndefault_pass = %s\n", c.User, strings.TrimSpace(string(password)))
	return b.String(), nil
}

func (e *Engine) configPath() string { return filepath.Join(e.Config.RunDir, "rabbitmq.conf") }

// environment is what rabbitmq-server and the CLI tools need to find this node and its files.
func (e *Engine) environment() []string {
	c := e.Config
	return append(append(os.Environ(),
		"HOME="+c.RunDir,
		"RABBITMQ_NODENAME="+c.NodeName,
		"RABBITMQ_USE_LONGNAME=true",
		"RABBITMQ_CONFIG_FILE="+e.configPath(),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(c.ConfigDir, PluginsFile),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(c.DataDir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(c.RunDir, "log"),
		"ERL_CRASH_DUMP="+filepath.Join(c.RunDir, "erl_crash.dump"),
	), c.Env...)
}

// debianBinDir has RabbitMQ's own scripts in Debian's package. Debian's /usr/sbin/rabbitmq-server
// is a wrapper that sends the output to /var/log and does not pass signals on, so the agent runs
// the scripts themselves. The official images have them on PATH.
const debianBinDir = "/usr/lib/rabbitmq/bin"

func (e *Engine) binDir() string {
	if e.Config.BinDir != "" {
		return e.Config.BinDir
	}
	if _, err := os.Stat(filepath.Join(debianBinDir, "rabbitmq-server")); err == nil {
		return debianBinDir
	}
	return ""
}

func (e *Engine) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if d := e.binDir(); d != "" {
		name = filepath.Join(d, name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.environment()
	cmd.Dir = e.Config.RunDir
	if cr := e.Config.Credential; cr != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cr}
	}
	return cmd
}

// tool is a RabbitMQ CLI tool run against this node. The script starts an Erlang VM of its own,
// which outlives a killed script and holds its output open: the tool gets its own process group,
// killed whole when ctx ends, and its output is given up a few seconds after that.
func (e *Engine) tool(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := e.command(ctx, name, args...)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Command implements fwagent.Engine.
func (e *Engine) Command() *exec.Cmd {
	return e.command(context.Background(), "rabbitmq-server")
}

// StopSignal implements fwagent.Engine: RabbitMQ stops cleanly on SIGTERM.
func (e *Engine) StopSignal() os.Signal { return syscall.SIGTERM }

// Status implements fwagent.Engine: the node is ready once its AMQP listeners accept
// connections, which RabbitMQ opens at the end of its boot, after it has joined its cluster, and
// the operator's administrator logs in with the Secret's password (Control).
func (e *Engine) Status(ctx context.Context) fwagent.Status {
	if detail := e.accepting(ctx); detail != "" {
		return fwagent.Status{Detail: detail}
	}
	if !e.adminChecked.Load() {
		return fwagent.Status{Detail: "checking the administrator's password"}
	}
	return fwagent.Status{Ready: true}
}

// accepting says why the node's listeners do not accept connections yet, "" when they do.
func (e *Engine) accepting(ctx context.Context) string {
	d := net.Dialer{Timeout: 2 * time.Second}
	for _, port := range []int{e.Config.AMQPPort, e.Config.AMQPSPort} {
		if port == 0 {
			continue
		}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return fmt.Sprintf("the node does not accept connections on port %d yet", port)
		}
		conn.Close()
	}
	return ""
}

// ReloadFiles implements fwagent.Reloader: the TLS files. Every other setting is read at start
// only, and the operator rolls the nodes when one changes.
func (e *Engine) ReloadFiles() []string {
	if e.Config.TLSDir == "" {
		return nil
	}
	return []string{filepath.Join(e.Config.TLSDir, "tls.crt"), filepath.Join(e.Config.TLSDir, "tls.key"),
		filepath.Join(e.Config.TLSDir, "ca.crt")}
}

// Reload implements fwagent.Reloader. RabbitMQ reads the certificate files again for new
// connections once Erlang's certificate cache is cleared; open connections keep theirs.
func (e *Engine) Reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := e.tool(ctx, "rabbitmqctl", "--longnames", "eval", "ssl:clear_pem_cache().").CombinedOutput()
	if err != nil {
		return fmt.Errorf("clearing the certificate cache: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Actions the operator may ask for (fwagent.Actor). Each names another node (parameter "node")
// and runs on a node that stays, so it works whether the named node still runs or not.
const (
	// ActionShrink removes the node's replicas from every quorum queue (the members on the other
	// nodes keep serving it), before the node leaves the cluster.
	ActionShrink = "shrink"
	// ActionForget removes a stopped node from the cluster's membership.
	ActionForget = "forget"
)

// adminPassword is the operator's administrator password, which only the operator and the pod
// know.
func (e *Engine) adminPassword() (string, error) {
	b, err := os.ReadFile(filepath.Join(e.Config.SecretDir, PasswordFile))
	return strings.TrimSpace(string(b)), err
}

// Act implements fwagent.Actor with RabbitMQ's own tools, run against this node.
func (e *Engine) Act(ctx context.Context, action string, params url.Values) error {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	node := params.Get("node")
	if !strings.HasPrefix(node, "rabbit@") || node == e.Config.NodeName {
		return fmt.Errorf("%s: %q is not another node of this cluster", action, node)
	}
	var cmd *exec.Cmd
	switch action {
	case ActionShrink:
		cmd = e.tool(ctx, "rabbitmq-queues", "shrink", node, "--errors-only")
	case ActionForget:
		cmd = e.tool(ctx, "rabbitmqctl", "forget_cluster_node", node)
	default:
		return fmt.Errorf("no action %q (have: %s, %s)", action, ActionShrink, ActionForget)
	}
	out, err := cmd.CombinedOutput()
	if err != nil && action == ActionForget && strings.Contains(string(out), "not_a_cluster_node") {
		return nil // forgotten already
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ErrNoNodeName is returned when the agent is started without --node-name.
var ErrNoNodeName = errors.New("rabbitmq agent: the node needs a name (--node-name)")
