package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// runAgent is "manager agent <engine> [flags]": PID 1 of an engine's container. An init container
// copies the manager binary into the pod, so the engine's image needs no entrypoint of its own.
// The engine's flags are its agent's argument struct (fwagent.BindFlags), the one its Render fills.
func runAgent(args []string) error {
	if len(args) == 0 {
		return errors.New("agent: name the engine, for example: manager agent postgres --help")
	}
	var plugin *engine.Plugin
	var have []string
	for _, p := range compiledPlugins() {
		if p.Engine.Name() == args[0] {
			plugin = &p
		}
		have = append(have, p.Engine.Name())
	}
	if plugin == nil {
		return fmt.Errorf("agent: no agent for engine %q (have: %s)", args[0], strings.Join(have, ", "))
	}
	fs := flag.NewFlagSet("agent "+args[0], flag.ContinueOnError)
	var listen fwagent.Listen
	fwagent.BindListen(fs, &listen)
	engineArgs := plugin.Agent.Args()
	fwagent.BindFlags(fs, engineArgs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	e, err := plugin.Agent.New(engineArgs, listen)
	if err != nil {
		return err
	}
	ctx, stop := agentruntime.SignalContext()
	defer stop()
	logger := zap.New()
	ctrl.SetLogger(logger)
	return agentruntime.Run(log.IntoContext(ctx, logger), e, listen)
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
