package main

import (
	"strings"

	"github.com/datafleet-dev/datafleet/engines/mongodb"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	rmqagent "github.com/datafleet-dev/datafleet/engines/rabbitmq/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// compiledPlugins are the engines built into this manager, each registered once: the operator's
// controllers, the backup Jobs and "manager agent <engine>" all find them here.
func compiledPlugins() []engine.Plugin {
	return []engine.Plugin{
		{Engine: mongodb.New(), Agent: mongoagent.Plugin()},
		{Engine: postgres.New(), Agent: pgagent.Plugin()},
		{Engine: rabbitmq.New(), Agent: rmqagent.Plugin()},
	}
}

// compiledEngines are the controller sides of compiledPlugins.
func compiledEngines() []engine.Engine { return engine.Engines(compiledPlugins()) }

func describeEngines(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}
