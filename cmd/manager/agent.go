package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	return agentruntime.Main(args[0], plugin.Agent, args[1:])
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
