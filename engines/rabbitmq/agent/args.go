package agent

import (
	"k8s.io/utils/ptr"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// AdminUser is the administrator the operator uses for the management API; the agent creates it
// with the password in its SecretDir.
const AdminUser = "datafleet-operator"

// Args are the agent's arguments: the engine's Render fills what a pod needs and renders them
// with fwagent.Flags; the agent parses them over DefaultArgs with fwagent.BindFlags.
type Args struct {
	NodeName  string `flag:"node-name" usage:"the Erlang node name, rabbit@<fully qualified host>"`
	ConfigDir string `flag:"config-dir" usage:"directory of rabbitmq.conf, peers.conf and enabled_plugins"`
	SecretDir string `flag:"secret-dir" usage:"directory of the Erlang cookie and the administrator's password"`
	DataDir   string `flag:"data-dir" usage:"the node's database"`
	RunDir    string `flag:"run-dir" usage:"private writable directory: assembled configuration, HOME"`
	// AMQPPort is a pointer so that Render can say 0 (no plain listener) where the default is not.
	AMQPPort  *int   `flag:"amqp-port" usage:"the AMQP port readiness checks (0: none, with TLS required)"`
	TLSDir    string `flag:"tls-dir" usage:"directory of tls.crt, tls.key and ca.crt; empty: no TLS"`
	AMQPSPort int    `flag:"amqps-port" usage:"the AMQPS port readiness checks too (0: none)"`
}

// DefaultArgs are what a flag the pod does not give means.
func DefaultArgs() Args {
	return Args{ConfigDir: "/etc/datafleet", SecretDir: "/etc/datafleet/secret", DataDir: "/var/lib/rabbitmq",
		RunDir: "/var/run/rabbitmq", AMQPPort: ptr.To(5672)}
}

// Plugin is the agent as the manager binary runs it: "manager agent rabbitmq [flags]".
func Plugin() fwagent.Plugin { return fwagent.NewPlugin(DefaultArgs, New) }

// New builds the agent from its arguments.
func New(a Args, _ fwagent.Listen) (fwagent.Engine, error) {
	if a.NodeName == "" {
		return nil, ErrNoNodeName
	}
	return &Engine{Config: Config{NodeName: a.NodeName, User: AdminUser, ConfigDir: a.ConfigDir, SecretDir: a.SecretDir,
		DataDir: a.DataDir, RunDir: a.RunDir, TLSDir: a.TLSDir, AMQPPort: ptr.Deref(a.AMQPPort, 5672), AMQPSPort: a.AMQPSPort}}, nil
}
