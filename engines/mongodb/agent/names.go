package agent

// Port is the server's port in the pods.
const Port = 27017

// The servers the agent runs.
const (
	ServerMongod   = "mongod"
	ServerFerretDB = "ferretdb"
)

// Names shared by the agent and the engine's Render (engines/mongodb), which imports this package.
const (
	ConfigFile  = "mongod.conf" // ConfigMap key: mongod's configuration
	MembersFile = "members"     // ConfigMap key: the wanted members' hosts, one per line
	KeyfileKey  = "keyfile"     // Secret key: the replica set's shared key
	PasswordKey = "password"    // Secret key: the operator's administrator's password

	// AdminUser is the operator's own administrator (root on admin).
	AdminUser = "datafleet-operator"

	RolePrimary = "primary"
	RoleReplica = "replica"

	// Actions the operator asks a member's agent for (fwagent.Actor).
	ActionStepDown     = "step-down"
	ActionRemoveMember = "remove-member"
	ParamHost          = "host"
)

// KeyfilePath is where the agent puts its private copy of the keyfile.
func KeyfilePath(runDir string) string { return runDir + "/keyfile" }
