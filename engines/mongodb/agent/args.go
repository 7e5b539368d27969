package agent

// Args are the agent's arguments: Render (engines/mongodb) fills what a pod needs and renders them
// with fwagent.Flags; the agent parses them over DefaultArgs with fwagent.BindFlags.
type Args struct {
	Server     string `flag:"server" usage:"the server to run: mongod, or ferretdb (the local image)"`
	ConfigDir  string `flag:"config-dir" usage:"directory of mongod.conf and the wanted members"`
	SecretDir  string `flag:"secret-dir" usage:"directory of the keyfile and the administrator's password"`
	DataDir    string `flag:"data-dir" usage:"the member's data"`
	RunDir     string `flag:"run-dir" usage:"private writable directory: the keyfile's copy"`
	ReplicaSet string `flag:"replica-set" usage:"the replica set's name"`
	Host       string `flag:"host" usage:"this member's host:port in the replica set"`
	Port       int    `flag:"port" usage:"the server's port"`
}

// DefaultArgs are what a flag the pod does not give means.
func DefaultArgs() Args {
	return Args{Server: ServerMongod, ConfigDir: "/etc/datafleet", SecretDir: "/etc/datafleet/secret",
		DataDir: "/data/db", RunDir: "/var/run/mongodb", Port: Port}
}
