package mongodb

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5e9))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// login connects as user of database app and runs a command that needs an authenticated connection.
func login(ctx context.Context, t *testing.T, addr, user, password string) error {
	t.Helper()
	return loginTo(ctx, t, addr, "app", user, password)
}

func loginTo(ctx context.Context, t *testing.T, addr, authDB, user, password string) error {
	t.Helper()
	opts := options.Client().ApplyURI("mongodb://" + addr).SetServerSelectionTimeout(5e9).
		SetAuth(options.Credential{AuthMechanism: "SCRAM-SHA-256", AuthSource: authDB, Username: user, Password: password})
	c, err := mongo.Connect(opts)
	if err != nil {
		return err
	}
	defer c.Disconnect(ctx)
	_, err = c.Database("app").Collection("probe").InsertOne(ctx, bson.D{{Key: "by", Value: user}})
	return err
}

// Users against a real wire-protocol server (FerretDB: MongoDB itself cannot be installed here):
// created, logged in with SCRAM-SHA-256, password changed, dropped; each step create-if-absent.
// FerretDB has no roles, which Probe detects; the role mapping is checked by RolesFor alone.
func TestUsersOnFerretDB(t *testing.T) {
	f := testenv.StartFerretDB(t)
	ctx := context.Background()
	s, err := Probe(ctx, connect(t, f.URI()))
	if err != nil {
		t.Fatal(err)
	}
	if s.Roles {
		t.Fatal("Probe took FerretDB for a server with roles")
	}
	for range 2 { // create, then the same again: a retried reconcile
		if err := s.EnsureUser(ctx, "app", "orders", "first-secret", []Role{{Role: "readWrite", DB: "app"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := login(ctx, t, f.Addr, "orders", "first-secret"); err != nil {
		t.Fatalf("login with the first password: %v", err)
	}
	if err := s.EnsureUser(ctx, "app", "orders", "second-secret", nil); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, t, f.Addr, "orders", "second-secret"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if err := login(ctx, t, f.Addr, "orders", "first-secret"); err == nil {
		t.Error("the old password still logs in after updateUser")
	}
	for range 2 { // dropping a dropped user is not an error
		if err := s.DropUser(ctx, "app", "orders"); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.UserExists(ctx, "app", "orders"); err != nil || ok {
		t.Errorf("after dropUser: exists %v, %v", ok, err)
	}
	if err := login(ctx, t, f.Addr, "orders", "second-secret"); err == nil {
		t.Error("a dropped user still logs in")
	}
}

func TestRolesFor(t *testing.T) {
	for role, want := range map[string]string{"admin": "dbOwner", "readWrite": "readWrite", "readOnly": "read"} {
		got, err := RolesFor(role, "app")
		if err != nil || len(got) != 1 || got[0] != (Role{Role: want, DB: "app"}) {
			t.Errorf("RolesFor(%s) = %v, %v", role, got, err)
		}
	}
	if _, err := RolesFor("root", "app"); err == nil {
		t.Error("an unknown binding role was mapped")
	}
}
