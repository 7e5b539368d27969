package main

import (
	"errors"
	"flag"
	"fmt"

	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// runAgent is "manager agent <engine> [flags]": PID 1 of an engine's container. An init container
// copies the manager binary into the pod, so the engine's image needs no entrypoint of its own.
func runAgent(args []string) error {
	if len(args) == 0 {
		return errors.New("agent: name the engine, for example: manager agent postgres --help")
	}
	fs := flag.NewFlagSet("agent "+args[0], flag.ContinueOnError)
	addr := fs.String("http-address", ":8000", "address of the agent's /healthz, /readyz and /status endpoints")
	var e fwagent.Engine
	switch args[0] {
	case "postgres":
		var c pgagent.Config
		fs.StringVar(&c.BinDir, "bin-dir", "", "directory of initdb and postgres (default: $PATH)")
		fs.StringVar(&c.DataDir, "data-dir", "/var/lib/postgresql/data/pgdata", "PGDATA")
		fs.StringVar(&c.SocketDir, "socket-dir", "/var/run/postgresql", "directory of the Unix socket")
		fs.StringVar(&c.ListenAddresses, "listen-addresses", "*", "PostgreSQL's listen_addresses")
		fs.IntVar(&c.Port, "port", 5432, "PostgreSQL's port")
		fs.StringVar(&c.ParametersFile, "parameters-file", "/etc/datafleet/parameters.conf", "the instance's parameters, included by postgresql.conf")
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		e = &pgagent.Engine{Config: c}
	default:
		return fmt.Errorf("agent: no agent for engine %q (have: postgres)", args[0])
	}
	ctx, stop := fwagent.SignalContext()
	defer stop()
	return fwagent.Run(ctx, e, *addr)
}
