package mongodb

import (
	"cmp"
	"context"
	"fmt"

	"net/url"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.UserManager = Engine{}

// BindingType implements engine.UserManager.
func (Engine) BindingType() string { return "mongodb" }

// Roles implements engine.UserManager.
func (Engine) Roles() []v1alpha1.BindingRole { return v1alpha1.BindingRoles() }

// Target implements engine.UserManager: users are granted a database, and defined in it.
func (Engine) Target() string { return "database" }

// ReservedDatabases are MongoDB's own: a role on admin reaches every database and the operator's
// own user, local holds the oplog and config the sharding metadata.
var ReservedDatabases = []string{"admin", "local", "config"}

// CheckTarget implements engine.UserManager: MongoDB's own databases are refused.
func (Engine) CheckTarget(b *v1alpha1.ServiceBinding) error {
	if db := engine.BindingDatabase(b); slices.Contains(ReservedDatabases, db) {
		return fmt.Errorf("spec.database: database %q is reserved: MongoDB's admin, local and config databases are never a binding's", db)
	}
	return nil
}

// Connection implements engine.UserManager: the client Service as the seed, the user's own
// database as authSource, and for mongod the replica set's name, so that drivers discover the
// members and follow elections themselves. FerretDB has no set to name.
func (Engine) Connection(in engine.UsersInput, user, password string) engine.Connection {
	inst, db := in.Instance, engine.BindingDatabase(in.Binding)
	q := url.Values{"authSource": {db}}
	if ServerOf(in.Release) == mongoagent.ServerMongod {
		q.Set("replicaSet", ReplicaSetName(inst))
	}
	return engine.NewConnection("mongodb", workload.ServiceName(inst), inst.Namespace, mongoagent.Port, user, password, "database", db, q.Encode())
}

// EnsureUser implements engine.UserManager on the primary.
func (e Engine) EnsureUser(ctx context.Context, in engine.UsersInput, user, password string) error {
	if err := cmp.Or(engine.CheckUser(in, user), e.CheckTarget(in.Binding)); err != nil {
		return err
	}
	roles, err := RolesFor(string(in.Binding.Spec.Role), engine.BindingDatabase(in.Binding))
	if err != nil {
		return err
	}
	return e.onPrimary(ctx, in.Client, in.Instance, func(s *Server) error {
		return s.EnsureUser(ctx, engine.BindingDatabase(in.Binding), user, password, roles)
	})
}

// DropUsers implements engine.UserManager on the primary. Users own nothing in MongoDB: the
// database and its documents stay.
func (e Engine) DropUsers(ctx context.Context, in engine.UsersInput, keep []string) error {
	db := engine.BindingDatabase(in.Binding)
	return e.onPrimary(ctx, in.Client, in.Instance, func(s *Server) error {
		users, err := s.Users(ctx, db)
		if err != nil {
			return err
		}
		for _, u := range users {
			if names.IsUserOf(in.Stem, u) && !slices.Contains(keep, u) {
				if err := s.DropUser(ctx, db, u); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// onPrimary logs in to the pod labelled primary as the operator's administrator.
func (e Engine) onPrimary(ctx context.Context, c client.Reader, inst *v1alpha1.ServiceInstance, fn func(*Server) error) error {
	p, err := workload.ReadyMember(ctx, c, Name, inst, mongoagent.RolePrimary)
	if err != nil {
		return err
	}
	password, err := adminPassword(ctx, c, inst)
	if err != nil {
		return err
	}
	// A server that accepts and never answers holds this reconcile a minute, no longer.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return withAdmin(ctx, e.serverAddress(p), password, fn)
}

// withAdmin connects to one server (no discovery) as the administrator, probes it and runs fn.
func withAdmin(ctx context.Context, addr, password string, fn func(*Server) error) error {
	opts := options.Client().ApplyURI("mongodb://" + addr + "/?directConnection=true").
		SetServerSelectionTimeout(defaultTimeout).SetConnectTimeout(defaultTimeout).
		SetAuth(options.Credential{AuthSource: "admin", Username: mongoagent.AdminUser, Password: password, AuthMechanism: "SCRAM-SHA-256"})
	c, err := mongo.Connect(opts)
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	s, err := Probe(ctx, c)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	return fn(s)
}

// adminPassword is the operator's administrator password, from the instance's generated Secret.
func adminPassword(ctx context.Context, c client.Reader, inst *v1alpha1.ServiceInstance) (string, error) {
	return secrets.Value(ctx, c, types.NamespacedName{Namespace: inst.Namespace, Name: SecretName(inst)}, mongoagent.PasswordKey)
}
