package agent

import (
	"context"
	"encoding/json"
	"os"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// The agent's side of an in-place agent upgrade (fwagent.Adopter): the node runs on, with the
// files Bootstrap wrote; the new agent needs only to know that the administrator's password was
// checked, or the node would read as not ready until its control loop checked it again.

var _ fwagent.Adopter = (*Engine)(nil)

type handover struct {
	AdminChecked bool `json:"adminChecked,omitempty"`
}

// AgentDir implements fwagent.Adopter: the run directory, the pod's own scratch space.
func (e *Engine) AgentDir() string { return e.Config.RunDir }

// Handover implements fwagent.Adopter.
func (e *Engine) Handover() ([]byte, error) {
	return json.Marshal(handover{AdminChecked: e.adminChecked.Load()})
}

// Adopt implements fwagent.Adopter.
func (e *Engine) Adopt(_ context.Context, state []byte) error {
	if _, err := os.Stat(e.configPath()); err != nil {
		return err
	}
	var h handover
	if len(state) > 0 {
		if err := json.Unmarshal(state, &h); err != nil {
			return err
		}
	}
	e.adminChecked.Store(h.AdminChecked)
	return nil
}
