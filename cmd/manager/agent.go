package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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
