package agentruntime

import (
	"errors"
	"flag"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// Main is "manager agent <name> [flags]" once the engine is known: it parses the agent's flags
// (agent.BindListen, and the engine's argument struct with agent.BindFlags), builds the engine's
// agent and runs it until the container is asked to stop.
func Main(name string, p agent.Plugin, args []string) error {
	fs := flag.NewFlagSet("agent "+name, flag.ContinueOnError)
	var listen agent.Listen
	agent.BindListen(fs, &listen)
	engineArgs := p.Args()
	agent.BindFlags(fs, engineArgs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	e, err := p.New(engineArgs, listen)
	if err != nil {
		return err
	}
	ctx, stop := SignalContext()
	defer stop()
	logger := zap.New()
	ctrl.SetLogger(logger)
	return Run(log.IntoContext(ctx, logger), e, listen)
}
