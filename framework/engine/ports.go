package engine

// Ports names the container ports of an engine's pods by who may reach them, for the NetworkPolicy
// the framework renders for every instance (framework/netpol). Names, not numbers: the policy
// follows the pod template, and a port a given instance does not serve (amqps without spec.tls)
// matches nothing. Every port is open between the instance's own pods, and the agent's port to
// the operator and the instance's backup and restore Jobs; a port listed nowhere is open to
// nobody else.
type Ports struct {
	// Clients are the ports applications connect to: open to every pod of the namespaces that may
	// bind to the instance (its own, and those its spec.bindingPolicy allows).
	Clients []string
	// Operator are the ports the operator and the instance's backup and restore Jobs connect to
	// besides the agent's (the RabbitMQ management API, mongod for user management).
	Operator []string
}
