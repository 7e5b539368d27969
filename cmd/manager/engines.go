package main

import (
	"strings"

	"github.com/datafleet-dev/datafleet/engines/mongodb"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// compiledEngines lists the engines built into this manager.
func compiledEngines() []engine.Engine {
	return []engine.Engine{mongodb.New(), postgres.New(), rabbitmq.New()}
}

func describeEngines(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}
