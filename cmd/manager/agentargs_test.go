package main

import (
	"testing"

	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
)

// Every compiled engine's agent parses what its Render puts on the pod, and reads back each value.
func TestEveryAgentParsesWhatItsRenderWrites(t *testing.T) {
	for _, p := range compiledPlugins() {
		enginetest.AgentArgsRoundTrip(t, p, 3)
	}
}
