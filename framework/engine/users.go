package engine

import (
	"context"
	"fmt"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"net"
	"net/url"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// UserManager is implemented by engines that give ServiceBindings users of their own. The
// framework (framework/binding) owns everything else: the finalizer, the Secret, the password
// (generated and stored in the Secret before EnsureUser sees it), rotation and its overlap, the
// namespace policy and the conditions. The engine only turns users into its own statements.
//
// A binding's users are named UsersInput.Stem + "_" + rotation generation (names.UserName). Every call must be safe to
// repeat and to interrupt: the framework calls again until it succeeds, also after a restart.
type UserManager interface {
	// BindingType is the servicebinding.io type of the Secret: "postgresql", "rabbitmq", ...
	BindingType() string
	// Roles the engine can grant.
	Roles() []v1alpha1.BindingRole
	// Target is the binding's field that names what the user is granted: "database" or "vhost".
	// The framework refuses a binding that sets the other one.
	Target() string
	// CheckTarget refuses a target no binding may be granted: a system database, a name the
	// operator itself uses, a vhost that is not a real name. The error names the field and the
	// reason. It runs at admission (the ServiceBinding webhook), in the framework before every
	// EnsureUser, and again wherever the engine uses the target, so a binding admitted before the
	// rule existed, or while the webhook was off, still gets nothing. Pure.
	CheckTarget(b *v1alpha1.ServiceBinding) error
	// Connection says where the binding's user connects (the Secret's host, port, uri, ...).
	// Pure: no API calls.
	Connection(in UsersInput, user, password string) Connection
	// EnsureUser creates the user with the password and the binding's role, or brings an
	// existing one to that password and role. It should write nothing when the user is already so.
	// It refuses (CheckUser) a user that is not one of the binding's: the framework derives the
	// name from the binding, never from its Secret, which the binding's namespace can edit.
	EnsureUser(ctx context.Context, in UsersInput, user, password string) error
	// DropUsers drops every user of the binding (names.IsUserOf(in.Stem, user)) except those in
	// keep, with their grants. Objects they own stay, handed to
	// what the engine considers their owner: dropping a user never drops data.
	DropUsers(ctx context.Context, in UsersInput, keep []string) error
}

// UsersInput is what a UserManager may use.
type UsersInput struct {
	Instance *v1alpha1.ServiceInstance
	Release  catalog.Release
	// Client reads from the manager's cache (the engine finds its pods and its generated Secrets).
	Client  client.Reader
	Binding *v1alpha1.ServiceBinding
	// Stem starts the name of every user of this binding; derived from the binding's namespace and
	// name, so it is the same after a restart and distinct between bindings.
	Stem string
	// Agents reaches the instance's agents with the operator's client certificate.
	Agents fwagent.Dialer
}

// Connection is where a binding's application connects.
type Connection struct {
	Host string
	Port int32
	// URI includes the user and password.
	URI string
	// Extra keys of the Secret (for example "database" or "vhost").
	Extra map[string]string
}

// NewConnection is the Connection to Service service in namespace (its cluster DNS name) for a
// user: the URI is scheme://user:password@host:port/target?query, with the target (a database,
// a vhost) escaped as one path segment, and the target is also the Secret's key targetKey.
func NewConnection(scheme, service, namespace string, port int32, user, password, targetKey, target, query string) Connection {
	host := names.ServiceHost(service, namespace)
	u := url.URL{Scheme: scheme, User: url.UserPassword(user, password), Host: net.JoinHostPort(host, strconv.Itoa(int(port))),
		Path: "/" + target, RawPath: "/" + url.PathEscape(target), RawQuery: query}
	return Connection{Host: host, Port: port, URI: u.String(), Extra: map[string]string{targetKey: target}}
}

// DefaultDatabase is the database of a binding that names none, for engines whose Target is
// "database".
const DefaultDatabase = "app"

// BindingDatabase is the database the binding names, or DefaultDatabase.
func BindingDatabase(b *v1alpha1.ServiceBinding) string {
	if b.Spec.Database != "" {
		return b.Spec.Database
	}
	return DefaultDatabase
}

// DefaultVhost is the vhost of a binding that names none, for engines whose Target is "vhost".
const DefaultVhost = "/"

// BindingTarget is what the binding is granted, by the engine's Target: its database
// (BindingDatabase) or its vhost (DefaultVhost if it names none).
func BindingTarget(b *v1alpha1.ServiceBinding, users UserManager) string {
	if users.Target() == "vhost" {
		if b.Spec.Vhost != "" {
			return b.Spec.Vhost
		}
		return DefaultVhost
	}
	return BindingDatabase(b)
}

// CheckUser refuses a user that is not one of the binding's own (names.IsUserOf(in.Stem, user)):
// the name of the operator's administrator, of the replication user or of another binding's user
// never reaches an engine's EnsureUser as this binding's.
func CheckUser(in UsersInput, user string) error {
	if !names.IsUserOf(in.Stem, user) {
		return fmt.Errorf("refusing user %q: not one of the binding's users (%s_<generation>)", user, in.Stem)
	}
	return nil
}
