// Command agentbin runs an engine's agent in a process of its own, as a pod runs
// "manager agent <engine>": the in-place upgrade tests (engines/*/agent/upgrade_test.go) replace
// it with another build of itself (agenttest.Build). It also has the reference engine, which no
// manager compiles in, and links faster than the manager.
//
//	agentbin <engine> [flags]
//	agentbin segments push|fetch --config FILE NAME PATH
//	agentbin version
package main

import (
	"fmt"
	"os"

	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	rmqagent "github.com/datafleet-dev/datafleet/engines/rabbitmq/agent"
	refagent "github.com/datafleet-dev/datafleet/engines/reference/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/backup"
)

// broken, when set at link time (agenttest.BuildBroken), makes the agent fail at once: a release
// whose agent passes the trial run (version) and dies when it takes over.
var broken string

var plugins = map[string]func() fwagent.Plugin{
	"mongodb": mongoagent.Plugin, "postgres": pgagent.Plugin, "rabbitmq": rmqagent.Plugin, "reference": refagent.Plugin,
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agentbin:", err)
		os.Exit(backup.ExitCode(err))
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == fwagent.VersionCommand {
		return agentruntime.PrintVersion(os.Stdout)
	}
	if broken != "" {
		return fmt.Errorf("built broken (%s): the agent does not run", broken)
	}
	if len(args) > 0 && args[0] == "segments" { // as the manager's: an engine's archiver
		ctx, cancel := agentruntime.SignalContext()
		defer cancel()
		return backup.SegmentsMain(ctx, args[1:])
	}
	if len(args) == 0 || plugins[args[0]] == nil {
		return fmt.Errorf("usage: agentbin {mongodb|postgres|rabbitmq|reference} [flags], or agentbin %s", fwagent.VersionCommand)
	}
	return agentruntime.Main(args[0], plugins[args[0]](), args[1:])
}
