package fakeengine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// UsersName is the Users engine's name.
const UsersName = "fakeusers"

// ReservedDatabase is the database the Users engine reserves, as the real engines reserve their
// system databases.
const ReservedDatabase = "system"

// Users is the fake engine with bindings: users kept in memory. It stands in for a server where
// only the framework's decisions are under test (the real engines' users are tested against real
// servers); it grants no admin role, and it takes any user name it is given, unlike the real
// engines (engine.CheckUser), so the tests see the framework's own choice of names.
type Users struct {
	Engine
	mu    sync.Mutex
	users map[string]string
}

var _ engine.UserManager = (*Users)(nil)

// NewUsers is a Users engine whose server already has these users (name to password).
func NewUsers(existing map[string]string) *Users {
	users := map[string]string{}
	maps.Copy(users, existing)
	return &Users{users: users}
}

// Name implements engine.Engine.
func (*Users) Name() string { return UsersName }

// BindingType implements engine.UserManager.
func (*Users) BindingType() string { return "fake" }

// Target implements engine.UserManager.
func (*Users) Target() string { return "database" }

// Roles implements engine.UserManager.
func (*Users) Roles() []v1alpha1.BindingRole {
	return []v1alpha1.BindingRole{v1alpha1.RoleReadWrite, v1alpha1.RoleReadOnly}
}

// CheckTarget implements engine.UserManager: ReservedDatabase is refused.
func (*Users) CheckTarget(b *v1alpha1.ServiceBinding) error {
	if b.Spec.Database == ReservedDatabase {
		return errors.New(`spec.database: database "system" is reserved`)
	}
	return nil
}

// Connection implements engine.UserManager.
func (*Users) Connection(in engine.UsersInput, user, password string) engine.Connection {
	return engine.Connection{Host: names.ServiceHost(in.Instance.Name, in.Instance.Namespace), Port: 1234,
		URI: "fake://" + user + ":" + password + "@" + in.Instance.Name, Extra: map[string]string{"database": "app"}}
}

// EnsureUser implements engine.UserManager.
func (e *Users) EnsureUser(_ context.Context, _ engine.UsersInput, user, password string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[user] = password
	return nil
}

// DropUsers implements engine.UserManager.
func (e *Users) DropUsers(_ context.Context, in engine.UsersInput, keep []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for u := range e.users {
		if names.IsUserOf(in.Stem, u) && !slices.Contains(keep, u) {
			delete(e.users, u)
		}
	}
	return nil
}

// Password is the user's password on the server; empty when it has no such user.
func (e *Users) Password(user string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.users[user]
}

// Names are the server's users, sorted.
func (e *Users) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.users))
}
