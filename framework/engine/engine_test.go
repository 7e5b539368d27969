package engine

import (
	"strings"
	"testing"
)

// An operator started without --agent-image renders no pods that could not start, and says which
// flag is missing.
func TestCheckAgentImage(t *testing.T) {
	if err := (RenderInput{}).CheckAgentImage("postgres"); err == nil || !strings.Contains(err.Error(), "--agent-image") || !strings.Contains(err.Error(), "postgres pods") {
		t.Errorf("without an agent image: %v", err)
	}
	if err := (RenderInput{AgentImage: "operator:1"}).CheckAgentImage("postgres"); err != nil {
		t.Error(err)
	}
}
