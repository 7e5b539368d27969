package agent

import (
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Plugin is the agent as the manager binary runs it: "manager agent mongodb [flags]".
func Plugin() fwagent.Plugin { return fwagent.NewPlugin(DefaultArgs, New) }

// New builds the agent from its arguments.
func New(a Args, _ fwagent.Listen) (fwagent.Engine, error) {
	return &Engine{Config: Config{Server: a.Server, ConfigDir: a.ConfigDir, SecretDir: a.SecretDir, DataDir: a.DataDir,
		RunDir: a.RunDir, ReplicaSet: a.ReplicaSet, Host: a.Host, Port: a.Port, User: AdminUser}}, nil
}
