package agent

import (
	"os"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// Args are the agent's arguments: the engine's Render fills what a pod needs and renders them
// with fwagent.Flags; the agent parses them over DefaultArgs with fwagent.BindFlags.
type Args struct {
	BinDir                  string `flag:"bin-dir" usage:"directory of initdb and postgres (default: $PATH)"`
	DataDir                 string `flag:"data-dir" usage:"PGDATA"`
	SocketDir               string `flag:"socket-dir" usage:"directory of the Unix socket"`
	ListenAddresses         string `flag:"listen-addresses" usage:"PostgreSQL's listen_addresses"`
	Port                    int    `flag:"port" usage:"PostgreSQL's port"`
	ParametersFile          string `flag:"parameters-file" usage:"the instance's parameters, included by postgresql.conf"`
	Name                    string `flag:"name" usage:"this member's name: the pod name"`
	Lease                   string `flag:"lease" usage:"the instance's primary Lease in the pod's namespace; empty runs a standalone primary"`
	Source                  string `flag:"source" usage:"libpq host and port of the current primary, for example \"host=orders port=5432\""`
	ReplicationPasswordFile string `flag:"replication-password-file" usage:"file holding the replication user's password"`
	TLSDir                  string `flag:"tls-dir" usage:"directory of the server certificate and key (tls.crt, tls.key); empty: no TLS"`
	TLSRequired             bool   `flag:"tls-required" usage:"refuse connections in clear, replication included, which verifies the primary against --tls-dir's ca.crt"`
	ArchiveConfig           string `flag:"archive-config" usage:"the segment archive's configuration (JSON): the primary archives its WAL there; empty: no archiving"`
	RecoveryConfig          string `flag:"recovery-config" usage:"a point-in-time restore's configuration (JSON): the first primary builds its data from that physical backup and archive instead of initdb"`
}

// DefaultArgs are what a flag the pod does not give means.
func DefaultArgs() Args {
	return Args{DataDir: "/var/lib/postgresql/data/pgdata", SocketDir: "/var/run/postgresql", ListenAddresses: "*",
		Port: 5432, ParametersFile: "/etc/datafleet/parameters.conf", Name: os.Getenv("POD_NAME")}
}

// Plugin is the agent as the manager binary runs it: "manager agent postgres [flags]".
func Plugin() fwagent.Plugin { return fwagent.NewPlugin(DefaultArgs, New) }

// New builds the agent from its arguments. With a lease, the members confirm each other through
// their agents (the lease's failsafe), reached with the agents' certificate.
func New(a Args, l fwagent.Listen) (fwagent.Engine, error) {
	c := Config{BinDir: a.BinDir, DataDir: a.DataDir, SocketDir: a.SocketDir, ListenAddresses: a.ListenAddresses, Port: a.Port,
		ParametersFile: a.ParametersFile, Name: a.Name, Source: a.Source, TLSDir: a.TLSDir, TLSRequired: a.TLSRequired,
		ReplicationPasswordFile: a.ReplicationPasswordFile, ArchiveConfig: a.ArchiveConfig, Recovery: a.RecoveryConfig}
	if a.Lease == "" {
		return &Engine{Config: c}, nil
	}
	k, err := primary.InClusterKeeper(a.Lease, c.Name)
	if err != nil {
		return nil, err
	}
	c.Lease = k
	c.Peers = agentruntime.PeerDialer(l.TLSDir)
	e := &Engine{Config: c}
	k.Peers = e
	return e, nil
}
