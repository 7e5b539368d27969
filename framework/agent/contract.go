package agent

// The agent-side engine contract: what an engine's agent implements (Engine), the capabilities
// it opts into (Controller, Reloader, Adopter, Actor, Streamer, BaseBackuper), and what it reports (Status). The runtime
// that drives them is framework/agent/agentruntime.

import (
	"context"
	"io"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/datafleet-dev/datafleet/framework/primary"
)

// Status is what the engine reports about its running process.
type Status struct {
	// Ready is true when the engine serves clients in its role.
	Ready bool `json:"ready"`
	// Role is the engine's role, for example "primary" or "replica".
	Role string `json:"role,omitempty"`
	// Detail explains a not-ready status.
	Detail string `json:"detail,omitempty"`
	// Position is how far this member has written (primary) or received (replica), for engines
	// that elect a primary.
	Position *primary.Position `json:"position,omitempty"`
	// Replicas connected to a primary, as the primary sees them.
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
	// Archive is a primary's continuous archiving, when it archives (spec.backup.continuous).
	Archive *ArchiveStatus `json:"archive,omitempty"`
	// Restarts are the engine's restarts made by the agent itself, in the same container (the
	// pod's restart count does not show them); set by the agent runtime, not by the engine.
	Restarts *RestartStatus `json:"restarts,omitempty"`
}

// RestartStatus counts the times the agent stopped its engine's process and started it again in
// place because the engine's control loop asked (a primary stepping down or fencing), with the
// last reason.
type RestartStatus struct {
	Count      int       `json:"count"`
	LastReason string    `json:"lastReason"`
	LastTime   time.Time `json:"lastTime"`
}

// ArchiveStatus is how a primary's continuous archiving goes: which segment it stored last,
// which failed last, and how many completed segments wait.
type ArchiveStatus struct {
	// Backlog counts the completed segments not archived yet.
	Backlog int `json:"backlog"`
	// LastArchived names the segment stored last, LastFailed the one whose archiving failed last
	// (empty: none since the server started), each with when.
	LastArchived     string     `json:"lastArchived,omitempty"`
	LastArchivedTime *time.Time `json:"lastArchivedTime,omitempty"`
	LastFailed       string     `json:"lastFailed,omitempty"`
	LastFailedTime   *time.Time `json:"lastFailedTime,omitempty"`
	// ArchivedThrough is the newest time, by the database's clock, up to which every committed
	// transaction is in the archive (unset: not known yet). It may be well before
	// LastArchivedTime (a segment is stored some time after it was complete) or after it (a
	// database that has committed nothing since).
	ArchivedThrough *time.Time `json:"archivedThrough,omitempty"`
}

// Failing reports whether the last attempt to archive failed: a failure since the last success.
func (a *ArchiveStatus) Failing() bool {
	return a.LastFailedTime != nil && (a.LastArchivedTime == nil || a.LastFailedTime.After(*a.LastArchivedTime))
}

// ReplicaStatus is one replica connected to a primary.
type ReplicaStatus struct {
	Name string `json:"name"`
	// State is the engine's word for the connection, for example "streaming".
	State string `json:"state"`
	// Synchronous is true when commits wait for this replica.
	Synchronous bool `json:"synchronous,omitempty"`
}

// Engine is what an engine's agent implements.
type Engine interface {
	// Bootstrap prepares the data directory and configuration before the process starts. It runs
	// on every container start and must be idempotent.
	Bootstrap(ctx context.Context) error
	// Command is the engine's server process.
	Command() *exec.Cmd
	// StopSignal is sent to the process when the container is asked to stop.
	StopSignal() os.Signal
	// Status asks the running process how it is.
	Status(ctx context.Context) Status
}

// Controller is implemented by engines whose agent runs a control loop beside the process (for
// example the primary lease). When Control returns before the agent stops, the agent stops the
// process (at once with ImmediateStopSignal if the error has an `Immediate() bool` method that
// says so, cleanly otherwise), calls AfterStop, and starts the engine again in the same container:
// Bootstrap, Command, Control (after a short back-off if this keeps happening; see
// agentruntime/life.go). Only a Bootstrap that fails, or a process that exits on its own, ends the
// container.
type Controller interface {
	Control(ctx context.Context) error
	// ImmediateStopSignal stops the process without waiting for clients (fencing).
	ImmediateStopSignal() os.Signal
	// AfterStop runs once the process has stopped because it was asked to (a stop signal to the
	// container or Control returning), not when it crashed: for example to release a lease.
	AfterStop(ctx context.Context)
}

// Reloader is implemented by engines that apply changed files (parameters, certificates) without
// a restart. Kubernetes updates mounted ConfigMaps and Secrets in place; the agent polls the
// files' contents every ReloadInterval and calls Reload after any of them changed.
type Reloader interface {
	ReloadFiles() []string
	Reload(ctx context.Context) error
}

// Adopter is implemented by engines whose agent can be replaced while the engine's process runs:
// an operator upgrade brings a new agent binary, which takes over the running process instead of
// restarting it (agentruntime/upgrade.go). The old agent stops its control loop, asks Handover
// for what the loop knew, and executes the new binary in its place (the same PID, so the engine's
// process stays its child); the new agent calls Adopt instead of Bootstrap and Command.
type Adopter interface {
	// AgentDir is a directory the agent may write, on the pod's own disk, outside the engine's
	// data (backups and clones do not carry it): where a new agent binary is kept.
	AgentDir() string
	// Handover is the control loop's state, taken after Control returned, for the next agent.
	Handover() ([]byte, error)
	// Adopt prepares the agent for a process that already runs with the configuration Bootstrap
	// wrote, without touching the data, from what the previous agent's Handover returned.
	Adopt(ctx context.Context, state []byte) error
}

// Actor is implemented by engines whose agent carries out operations the operator asks for, such
// as draining a member before it is removed: the operator runs no engine tools itself and needs
// no exec into pods. Requests are POSTs to PathAction+name over mutual TLS, from a client whose
// certificate the instance's CA signed (tls.go), so nobody else on the pod network can trigger
// them and no password travels. Act must be idempotent: the operator repeats a request it did not
// see answered.
type Actor interface {
	Act(ctx context.Context, action string, params url.Values) error
}

// Streamer is implemented by Actors whose agent backs up and restores the instance's data with
// the engine's own tools, next to the data. Dump writes everything needed to rebuild the
// instance's data to w and returns nil only if it is complete; Load reads what Dump wrote and
// applies it, without changing the existing data unless all of it could be read, and returns a
// one-line summary of what it checked. Both are served at PathDump and PathLoad to the same
// clients as actions, and streamed: the agent holds no more than a buffer of either.
type Streamer interface {
	Dump(ctx context.Context, w io.Writer) error
	Load(ctx context.Context, r io.Reader) (string, error)
}

// BaseBackuper is implemented by Streamers whose engine also takes physical copies of its data
// (PostgreSQL's base backups), onto which a restore replays the continuous archive. BaseBackup
// writes the copy to w, returns where in the archived log a restore of it starts, and is served
// at PathBase.
type BaseBackuper interface {
	BaseBackup(ctx context.Context, w io.Writer) (BaseBackupInfo, error)
}

// BaseBackupInfo is where a base backup stands in its instance's log.
type BaseBackupInfo struct {
	// System is the database system's identifier: the directory of its archive.
	System string `json:"system"`
	// StartSegment is the first log segment a restore of it replays.
	StartSegment string `json:"startSegment"`
	// Started and Completed are the member's clock around the copy: a restore can reach no
	// earlier point than Completed.
	Started   time.Time `json:"started"`
	Completed time.Time `json:"completed"`
	// Member is the pod it was taken from, and Role that member's role then.
	Member string `json:"member,omitempty"`
	Role   string `json:"role,omitempty"`
}
