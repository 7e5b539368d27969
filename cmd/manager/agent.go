package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/datafleet-dev/datafleet/engines/mongodb"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	rmqagent "github.com/datafleet-dev/datafleet/engines/rabbitmq/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// runAgent is "manager agent <engine> [flags]": PID 1 of an engine's container. An init container
// copies the manager binary into the pod, so the engine's image needs no entrypoint of its own.
func runAgent(args []string) error {
	if len(args) == 0 {
		return errors.New("agent: name the engine, for example: manager agent postgres --help")
	}
	fs := flag.NewFlagSet("agent "+args[0], flag.ContinueOnError)
	var listen fwagent.Listen
	fs.StringVar(&listen.Addr, "http-address", ":8000", "address of the agent's HTTPS endpoints (/healthz, /readyz, /status, /action, /stream)")
	fs.StringVar(&listen.TLSDir, fwagent.FlagTLSDir, "", "directory of the agents' certificate, key and the instance's CA (tls.crt, tls.key, ca.crt)")
	// Each engine registers its flags and says how to build its agent from them once parsed.
	var build func() (fwagent.Engine, error)
	switch args[0] {
	case "postgres":
		var c pgagent.Config
		fs.StringVar(&c.BinDir, "bin-dir", "", "directory of initdb and postgres (default: $PATH)")
		fs.StringVar(&c.DataDir, "data-dir", "/var/lib/postgresql/data/pgdata", "PGDATA")
		fs.StringVar(&c.SocketDir, "socket-dir", "/var/run/postgresql", "directory of the Unix socket")
		fs.StringVar(&c.ListenAddresses, "listen-addresses", "*", "PostgreSQL's listen_addresses")
		fs.IntVar(&c.Port, "port", 5432, "PostgreSQL's port")
		fs.StringVar(&c.ParametersFile, "parameters-file", "/etc/datafleet/parameters.conf", "the instance's parameters, included by postgresql.conf")
		fs.StringVar(&c.Name, "name", os.Getenv("POD_NAME"), "this member's name: the pod name")
		lease := fs.String("lease", "", "the instance's primary Lease in the pod's namespace; empty runs a standalone primary")
		fs.StringVar(&c.Source, "source", "", `libpq host and port of the current primary, for example "host=orders port=5432"`)
		fs.StringVar(&c.TLSDir, "tls-dir", "", "directory of the server certificate and key (tls.crt, tls.key); empty: no TLS")
		fs.BoolVar(&c.TLSRequired, "tls-required", false, "refuse connections in clear, replication included, which verifies the primary against --tls-dir's ca.crt")
		fs.StringVar(&c.ReplicationPasswordFile, "replication-password-file", "", "file holding the replication user's password")
		build = func() (fwagent.Engine, error) {
			if *lease == "" {
				return &pgagent.Engine{Config: c}, nil
			}
			k, err := leaseKeeper(*lease, c.Name)
			if err != nil {
				return nil, err
			}
			c.Lease = k
			c.Peers = fwagent.PeerDialer(listen.TLSDir)
			e := &pgagent.Engine{Config: c}
			k.Peers = e // the members confirm each other through their agents (failsafe)
			return e, nil
		}
	case "rabbitmq":
		c := rmqagent.Config{User: rabbitmq.AdminUser}
		fs.StringVar(&c.NodeName, "node-name", "", "the Erlang node name, rabbit@<fully qualified host>")
		fs.StringVar(&c.ConfigDir, "config-dir", "/etc/datafleet", "directory of rabbitmq.conf, peers.conf and enabled_plugins")
		fs.StringVar(&c.SecretDir, "secret-dir", "/etc/datafleet/secret", "directory of the Erlang cookie and the administrator's password")
		fs.StringVar(&c.DataDir, "data-dir", "/var/lib/rabbitmq", "the node's database")
		fs.StringVar(&c.RunDir, "run-dir", "/var/run/rabbitmq", "private writable directory: assembled configuration, HOME")
		fs.StringVar(&c.TLSDir, "tls-dir", "", "directory of tls.crt, tls.key and ca.crt; empty: no TLS")
		fs.IntVar(&c.AMQPPort, "amqp-port", 5672, "the AMQP port readiness checks")
		fs.IntVar(&c.AMQPSPort, "amqps-port", 0, "the AMQPS port readiness checks too (0: none)")
		build = func() (fwagent.Engine, error) {
			if c.NodeName == "" {
				return nil, rmqagent.ErrNoNodeName
			}
			return &rmqagent.Engine{Config: c}, nil
		}
	case "mongodb":
		c := mongoagent.Config{User: mongodb.AdminUser}
		fs.StringVar(&c.Server, "server", mongodb.ServerMongod, "the server to run: mongod, or ferretdb (the local image)")
		fs.StringVar(&c.ConfigDir, "config-dir", "/etc/datafleet", "directory of mongod.conf and the wanted members")
		fs.StringVar(&c.SecretDir, "secret-dir", "/etc/datafleet/secret", "directory of the keyfile and the administrator's password")
		fs.StringVar(&c.DataDir, "data-dir", "/data/db", "the member's data")
		fs.StringVar(&c.RunDir, "run-dir", "/var/run/mongodb", "private writable directory: the keyfile's copy")
		fs.StringVar(&c.ReplicaSet, "replica-set", "", "the replica set's name")
		fs.StringVar(&c.Host, "host", "", "this member's host:port in the replica set")
		fs.IntVar(&c.Port, "port", mongodb.Port, "the server's port")
		build = func() (fwagent.Engine, error) { return &mongoagent.Engine{Config: c}, nil }
	default:
		return fmt.Errorf("agent: no agent for engine %q (have: postgres, rabbitmq, mongodb)", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	e, err := build()
	if err != nil {
		return err
	}
	ctx, stop := fwagent.SignalContext()
	defer stop()
	logger := zap.New()
	ctrl.SetLogger(logger)
	return fwagent.Run(log.IntoContext(ctx, logger), e, listen)
}

// leaseKeeper talks to the API server with the pod's service account, which may read and update
// only its instance's Lease.
func leaseKeeper(lease, name string) (*primary.Keeper, error) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" || name == "" {
		return nil, errors.New("agent: --lease needs POD_NAMESPACE and --name (or POD_NAME)")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	// A backstop under the keeper's own deadlines: no request to the API server outlives a renewal.
	cfg.Timeout = primary.CallTimeout
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &primary.Keeper{Client: c, Key: types.NamespacedName{Namespace: ns, Name: lease}, Identity: name}, nil
}

// installAgent is "manager install-agent DEST": the init container of an engine pod copies the
// manager binary to a volume the engine's container shares. The operator image has no shell or cp.
func installAgent(args []string) error {
	if len(args) != 1 {
		return errors.New("install-agent: give the destination path")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := args[0] + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, args[0])
}
