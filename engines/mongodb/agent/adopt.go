package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"slices"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// The agent's side of an in-place agent upgrade (fwagent.Adopter): the server runs on, with the
// files Bootstrap wrote. The new agent needs what the old one learnt: the members the operator
// asked to remove (the members file may still list them), and whether the administrator logs in
// with the Secret's password, or a primary would read as not ready until the control loop
// checked it again. The password itself never enters the handover (the new process's
// environment): only its digest, compared with the Secret's.

var _ fwagent.Adopter = (*Engine)(nil)

type handover struct {
	Removed []string `json:"removed,omitempty"`
	// VerifiedSHA256 is the sha256 of the password the administrator was seen to log in with.
	VerifiedSHA256 string `json:"verifiedSHA256,omitempty"`
}

func passwordDigest(p string) string {
	sum := sha256.Sum256([]byte(p))
	return hex.EncodeToString(sum[:])
}

// AgentDir implements fwagent.Adopter: the run directory, the pod's own scratch space.
func (e *Engine) AgentDir() string { return e.Config.RunDir }

// Handover implements fwagent.Adopter.
func (e *Engine) Handover() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := handover{Removed: slices.Sorted(maps.Keys(e.removed))}
	if e.verified != "" {
		h.VerifiedSHA256 = passwordDigest(e.verified)
	}
	return json.Marshal(h)
}

// Adopt implements fwagent.Adopter.
func (e *Engine) Adopt(_ context.Context, state []byte) error {
	if _, err := os.Stat(e.Config.RunDir); err != nil {
		return err
	}
	password, err := e.password()
	if err != nil {
		return err
	}
	var h handover
	if len(state) > 0 {
		if err := json.Unmarshal(state, &h); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, host := range h.Removed {
		if e.removed == nil {
			e.removed = map[string]bool{}
		}
		e.removed[host] = true
	}
	if h.VerifiedSHA256 != "" && h.VerifiedSHA256 == passwordDigest(password) {
		e.verified = password
	}
	return nil
}
