package main

import (
	"strings"

	"github.com/datafleet-dev/datafleet/framework/engine"
)

// compiledEngines lists the engines built into this manager. Each real engine (PostgreSQL,
// RabbitMQ, MongoDB) adds itself here when it lands; until then the manager runs none, and
// instances report UnknownEngine.
func compiledEngines() []engine.Engine {
	return nil
}

func describeEngines(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}
