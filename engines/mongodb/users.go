package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Role is a MongoDB role on a database.
type Role struct {
	Role string `bson:"role"`
	DB   string `bson:"db"`
}

// RolesFor maps a binding's role (admin, readWrite, readOnly) on database db to MongoDB's built-in
// roles.
func RolesFor(role, db string) ([]Role, error) {
	switch role {
	case "admin":
		return []Role{{Role: "dbOwner", DB: db}}, nil
	case "readWrite":
		return []Role{{Role: "readWrite", DB: db}}, nil
	case "readOnly":
		return []Role{{Role: "read", DB: db}}, nil
	}
	return nil, fmt.Errorf("role %q: want admin, readWrite or readOnly", role)
}

// Server is a connection to an instance's primary with what the server supports.
type Server struct {
	Client *mongo.Client
	// Roles is false on FerretDB, which has no role-based authorization: users are created
	// without roles there (and may do anything), which the local catalog entry documents.
	Roles bool
}

// Probe asks the server what it is (buildInfo): FerretDB says so with a ferretdbVersion field.
func Probe(ctx context.Context, c *mongo.Client) (*Server, error) {
	var info bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return nil, fmt.Errorf("buildInfo: %w", err)
	}
	_, ferret := info["ferretdbVersion"]
	return &Server{Client: c, Roles: !ferret}, nil
}

// codeUserNotFound is MongoDB's error code for a user that does not exist.
const codeUserNotFound = 11

// EnsureUser creates user in authDB with password and roles, or, when it exists, sets its password
// and roles: create-if-absent, so a retried reconcile converges.
func (s *Server) EnsureUser(ctx context.Context, authDB, user, password string, roles []Role) error {
	exists, err := s.UserExists(ctx, authDB, user)
	if err != nil {
		return err
	}
	if !s.Roles {
		roles = []Role{}
	}
	cmd := bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: password}, {Key: "roles", Value: roles},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}}}
	if exists {
		cmd = bson.D{{Key: "updateUser", Value: user}, {Key: "pwd", Value: password}}
		if s.Roles {
			cmd = append(cmd, bson.E{Key: "roles", Value: roles})
		}
	}
	if err := s.Client.Database(authDB).RunCommand(ctx, cmd).Err(); err != nil {
		// The password is in cmd: the error names the command, never its arguments.
		return fmt.Errorf("%s of user %q in %s: %w", cmd[0].Key, user, authDB, err)
	}
	return nil
}

// UserExists looks the user up with usersInfo.
func (s *Server) UserExists(ctx context.Context, authDB, user string) (bool, error) {
	var res struct {
		Users []bson.M `bson:"users"`
	}
	if err := s.Client.Database(authDB).RunCommand(ctx, bson.D{{Key: "usersInfo", Value: user}}).Decode(&res); err != nil {
		return false, fmt.Errorf("usersInfo %q in %s: %w", user, authDB, err)
	}
	return len(res.Users) > 0, nil
}

// DropUser removes the user; a user that is already gone is not an error.
func (s *Server) DropUser(ctx context.Context, authDB, user string) error {
	err := s.Client.Database(authDB).RunCommand(ctx, bson.D{{Key: "dropUser", Value: user}}).Err()
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == codeUserNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dropUser %q in %s: %w", user, authDB, err)
	}
	return nil
}

// Users lists the names of the users defined in authDB.
func (s *Server) Users(ctx context.Context, authDB string) ([]string, error) {
	var res struct {
		Users []struct {
			User string `bson:"user"`
			DB   string `bson:"db"`
		} `bson:"users"`
	}
	if err := s.Client.Database(authDB).RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Decode(&res); err != nil {
		return nil, fmt.Errorf("usersInfo in %s: %w", authDB, err)
	}
	var out []string
	for _, u := range res.Users {
		if u.DB == "" || u.DB == authDB {
			out = append(out, u.User)
		}
	}
	return out, nil
}
