package agent

import fwagent "github.com/datafleet-dev/datafleet/framework/agent"

// Args are the agent's arguments: the engine's Render fills what a pod needs and renders them with
// fwagent.Flags; the agent parses them over DefaultArgs with fwagent.BindFlags. One struct for both
// sides means a flag cannot be renamed on one side only (enginetest.AgentArgsRoundTrip).
type Args struct {
	ConfigDir string `flag:"config-dir" usage:"directory of redis.conf (the ConfigMap)"`
	SecretDir string `flag:"secret-dir" usage:"directory of the password (the generated Secret)"`
	DataDir   string `flag:"data-dir" usage:"the server's data: the append-only file and snapshots"`
	RunDir    string `flag:"run-dir" usage:"private writable directory: the assembled configuration"`
	Port      int    `flag:"port" usage:"the server's port"`
	Bind      string `flag:"bind" usage:"addresses the server listens on (Redis's bind)"`
}

// DefaultArgs are what a flag the pod does not give means.
func DefaultArgs() Args {
	return Args{ConfigDir: "/etc/datafleet", SecretDir: "/etc/datafleet/secret", DataDir: "/data", RunDir: "/var/run/redis", Port: Port, Bind: "* -::*"}
}

// Plugin is the agent as the manager binary runs it: "manager agent reference [flags]".
func Plugin() fwagent.Plugin { return fwagent.NewPlugin(DefaultArgs, New) }

// New builds the agent from its arguments. The listen flags (the agent's own port and
// certificates) are the runtime's; this engine needs none of them.
func New(a Args, _ fwagent.Listen) (fwagent.Engine, error) {
	return &Engine{Args: a}, nil
}
