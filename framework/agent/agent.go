// Package agent is the contract between the operator and the in-pod instance agent: what an
// engine's agent implements (contract.go), its arguments (args.go), the endpoints it serves and
// how the operator reaches them over mutual TLS (client.go, tls.go). The runtime that runs an
// engine's agent in its pod is framework/agent/agentruntime, which the operator's side never
// imports.
package agent

// Endpoints served by the agent. The operator's probes and observer use them.
const (
	PathHealth = "/healthz" // the engine's process runs
	PathReady  = "/readyz"  // the engine serves clients
	PathStatus = "/status"  // Status as JSON
	PathAction = "/action/" // followed by the action's name (Actor)
	PathDump   = "/stream/dump"
	PathLoad   = "/stream/load"
	PathBase   = "/stream/base" // a physical base backup (BaseBackuper)
	// PathAgent is the agent itself: GET says which binary runs (Info), PUT replaces it with the
	// operator's binary while the engine's process keeps running (agentruntime/upgrade.go).
	PathAgent = "/agent"
)

// TrailerResult ends a dump's response: "ok" after a complete dump, else the error. A dump's
// status code is sent before the dump runs, so only the trailer can say how it ended.
const TrailerResult = "Datafleet-Result"

// TrailerBaseBackup follows a complete base backup: its BaseBackupInfo as JSON.
const TrailerBaseBackup = "Datafleet-Base-Backup"

// Listen is where the agent serves: HTTPS on Addr with the certificate, key and CA in TLSDir
// (see agentruntime/tls.go), and its metrics on MetricsAddr (metrics.go).
type Listen struct {
	Addr        string
	MetricsAddr string
	TLSDir      string
}
