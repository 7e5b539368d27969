package postgres

import (
	"context"
	"fmt"
	"net/url"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.UserManager = Engine{}

// BindingType implements engine.UserManager.
func (Engine) BindingType() string { return "postgresql" }

// Roles implements engine.UserManager.
func (Engine) Roles() []v1alpha1.BindingRole { return v1alpha1.BindingRoles() }

// Target implements engine.UserManager: users are granted a database.
func (Engine) Target() string { return "database" }

// CheckTarget implements engine.UserManager: the maintenance database, the templates and the
// restore's side databases are refused (the agent refuses them again).
func (Engine) CheckTarget(b *v1alpha1.ServiceBinding) error {
	if err := pgagent.CheckDatabase(engine.BindingDatabase(b)); err != nil {
		return fmt.Errorf("spec.database: %w", err)
	}
	return nil
}

// Connection implements engine.UserManager: the read-write Service. With TLS the URI asks for
// an encrypted connection (sslmode=require); applications that verify the server use ca.crt,
// whose path only they know.
func (Engine) Connection(in engine.UsersInput, user, password string) engine.Connection {
	inst := in.Instance
	query := ""
	if inst.TLSEnabled() {
		query = "sslmode=require"
	}
	return engine.NewConnection("postgresql", serviceName(inst, ""), inst.Namespace, port, user, password, "database", engine.BindingDatabase(in.Binding), query)
}

// EnsureUser implements engine.UserManager through the primary's agent. Only the password's
// SCRAM verifier leaves the operator.
func (Engine) EnsureUser(ctx context.Context, in engine.UsersInput, user, password string) error {
	if err := engine.CheckUser(in, user); err != nil {
		return err
	}
	return actOnPrimary(ctx, in, pgagent.ActionEnsureUser, url.Values{
		pgagent.ParamUser:     {user},
		pgagent.ParamVerifier: {pgagent.Verifier(user, password)},
		pgagent.ParamRole:     {string(in.Binding.Spec.Role)},
		pgagent.ParamDatabase: {engine.BindingDatabase(in.Binding)},
	})
}

// DropUsers implements engine.UserManager through the primary's agent. What the users own goes
// to their database's group; the database stays.
func (Engine) DropUsers(ctx context.Context, in engine.UsersInput, keep []string) error {
	return actOnPrimary(ctx, in, pgagent.ActionDropUsers, url.Values{pgagent.ParamStem: {in.Stem}, pgagent.ParamKeep: keep})
}

// actOnPrimary asks the agent of the pod labelled primary.
func actOnPrimary(ctx context.Context, in engine.UsersInput, action string, params url.Values) error {
	return actOn(ctx, engine.MarkerInput{Instance: in.Instance, Client: in.Client, Agents: in.Agents}, action, params)
}

// actOn asks the agent of the instance's pod labelled primary.
func actOn(ctx context.Context, in engine.MarkerInput, action string, params url.Values) error {
	p, err := workload.ReadyMember(ctx, in.Client, Name, in.Instance, RolePrimary)
	if err != nil {
		return err
	}
	return in.Agents.Pod(p).Act(ctx, action, params)
}
