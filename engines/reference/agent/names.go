package agent

// Names the agent and the engine's Render (engines/reference) share. The controller side imports
// this package, never the reverse (TestLayering), so a name is written once.

// Port is Redis's client port in the pods.
const Port = 6379

const (
	ConfigFile  = "redis.conf" // ConfigMap key: the settings the tenant may choose, rendered by the operator
	PasswordKey = "password"   // Secret key: the password every client, the agent included, logs in with

	// RoleServer is the one role a single-node instance has.
	RoleServer = "server"
)
