package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
)

// The administrator's users live in the data, its password in the instance's Secret. A member
// started over a volume that outlived its Secret (a retained volume re-bound after a namespace
// deletion: the Secret is generated again) would lock the operator out: MongoDB lets nobody in
// without a user once one exists, and changing a password without logging in means restarting
// mongod without access control. So the agent keeps, on the data volume beside the data, the
// password the administrator last logged in with (adminRecord), and the primary changes the
// administrator's password from that one to the Secret's. The record grants nothing the volume
// does not: whoever reads the volume has the data and the users' hashes already.
const adminRecord = ".datafleet-admin"

// MongoDB's error codes the agent tells apart.
const (
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
)

// ensureAdmin makes the operator's administrator log in with the Secret's password, once per
// password: it records the password when it does; otherwise, on the primary, it creates the
// administrator through the localhost exception when no user exists yet (mongod; FerretDB creates
// its setup user itself), or changes the password from the recorded one. A secondary only records
// (users replicate from the primary).
func (e *Engine) ensureAdmin(ctx context.Context, primary bool) error {
	password, err := e.password()
	if err != nil {
		return err
	}
	if e.adminVerified(password) {
		return nil
	}
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	err = admin.Database("admin").RunCommand(ctx, bson.D{{Key: "connectionStatus", Value: 1}}).Err()
	switch {
	case err == nil:
		return e.remember(password)
	case !primary:
		return nil
	}
	if !e.ferret() {
		created, cerr := e.createAdmin(ctx, password)
		if cerr != nil || created {
			return errors.Join(cerr, e.remember(password))
		}
	}
	// Users exist, so the exception is closed, and ours does not log in: its password is not the
	// Secret's.
	old, rerr := os.ReadFile(filepath.Join(e.Config.DataDir, adminRecord))
	if rerr != nil || string(old) == password {
		return fmt.Errorf("the administrator %q cannot log in, users exist already and no other password of it is recorded: %w", e.Config.User, err)
	}
	if err := e.changeAdminPassword(ctx, string(old), password); err != nil {
		return err
	}
	log.FromContext(ctx).Info("the administrator's password in the data was not the Secret's: changed it", "user", e.Config.User)
	return e.remember(password)
}

// createAdmin creates the administrator through the localhost exception; created is false when
// users exist already (the exception is closed).
func (e *Engine) createAdmin(ctx context.Context, password string) (created bool, err error) {
	local, err := e.localClient()
	if err != nil {
		return false, err
	}
	err = local.Database("admin").RunCommand(ctx, bson.D{{Key: "createUser", Value: e.Config.User}, {Key: "pwd", Value: password},
		{Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "root"}, {Key: "db", Value: "admin"}}}},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}}}).Err()
	var ce mongo.CommandError
	if errors.As(err, &ce) && (ce.Code == codeUnauthorized || ce.Code == codeAuthenticationFailed) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating the administrator %q: %w", e.Config.User, err)
	}
	log.FromContext(ctx).Info("created the operator's administrator", "user", e.Config.User)
	return true, nil
}

// changeAdminPassword logs in with the old password and sets the new one.
func (e *Engine) changeAdminPassword(ctx context.Context, old, password string) error {
	c, err := mongo.Connect(e.adminOptions(old))
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "updateUser", Value: e.Config.User}, {Key: "pwd", Value: password}}).Err(); err != nil {
		return fmt.Errorf("changing the administrator's password from the recorded one: %w", err)
	}
	return nil
}

// remember records password as the one the administrator logs in with, on the volume and for
// this process.
func (e *Engine) remember(password string) error {
	path := filepath.Join(e.Config.DataDir, adminRecord)
	if old, err := os.ReadFile(path); err != nil || string(old) != password {
		if err := agentruntime.WriteFileOwned(path, []byte(password), 0o600, e.Config.Credential); err != nil {
			return fmt.Errorf("recording the administrator's password: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.verified = password
	return nil
}

// adminVerified says whether the administrator was seen to log in with password.
func (e *Engine) adminVerified(password string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.verified != "" && e.verified == password
}
