// Package agent is the MongoDB side of the instance agent. It runs the server the image has
// (mongod, or FerretDB in the local image), reports the member's role from `hello`, and, for
// mongod, keeps the replica set as the operator wants it: the first member initiates it, the
// primary creates the operator's administrator and adds or removes one member at a time (see
// nextReplSet), and it steps down or removes a member when the operator asks.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
)

// Config is where the member's files are and which server it runs.
type Config struct {
	// Server is ServerMongod or ServerFerretDB.
	Server string
	// BinDir holds the server's binary; "" finds it on $PATH (and FerretDB also at /ferretdb).
	BinDir string
	// ConfigDir holds ConfigFile and MembersFile (the ConfigMap).
	ConfigDir string
	// SecretDir holds KeyfileKey and PasswordKey (the generated Secret).
	SecretDir string
	DataDir   string
	// RunDir is private and writable: the keyfile copy mongod insists on owning alone.
	RunDir string
	Port   int
	// Host is this member's address in the replica set (the engine's MemberHost).
	Host string
	// ReplicaSet is the set's name (mongod's replication.replSetName).
	ReplicaSet string
	// User is the operator's administrator in the admin database.
	User string
	// Env is added to the server's environment; Credential runs it as another user (tests).
	Env        []string
	Credential *syscall.Credential
}

// Engine is the MongoDB agent.
type Engine struct {
	Config Config

	mu    sync.Mutex
	local *mongo.Client // unauthenticated, to this member: hello, and the localhost exception
	admin *mongo.Client // as the administrator, to this member
	// adminPassword is the password admin logged in with.
	adminPassword string
	// verified is the password the administrator was seen to log in with (ensureAdmin).
	verified string
	// removed are members the operator asked to remove while the members file still lists them.
	removed map[string]bool
}

var (
	_ fwagent.DataVolume = (*Engine)(nil)
	_ fwagent.Exporter   = (*Engine)(nil)
	_ fwagent.Engine     = (*Engine)(nil)
	_ fwagent.Controller = (*Engine)(nil)
	_ fwagent.Actor      = (*Engine)(nil)
)

// DataDir implements fwagent.DataVolume.
func (e *Engine) DataDir() string { return e.Config.DataDir }

// ErrNoHost is returned when a mongod member is started without its replica-set address.
var ErrNoHost = errors.New("mongodb agent: mongod members need their replica-set address (--host)")

func (e *Engine) ferret() bool { return e.Config.Server == ServerFerretDB }

// Bootstrap implements fwagent.Engine. mongod refuses a keyfile others may read, and a Secret
// volume cannot give one file to one user only: the agent copies it at every start.
func (e *Engine) Bootstrap(context.Context) error {
	c := e.Config
	for _, d := range []string{c.RunDir, c.DataDir} {
		if err := agentruntime.MkdirOwned(d, c.Credential); err != nil {
			return err
		}
	}
	if _, err := e.password(); err != nil {
		return err
	}
	if e.ferret() {
		return nil
	}
	if c.Host == "" {
		return ErrNoHost
	}
	if err := e.markFresh(); err != nil {
		return err
	}
	key, err := os.ReadFile(filepath.Join(c.SecretDir, KeyfileKey))
	if err != nil {
		return fmt.Errorf("reading the keyfile: %w", err)
	}
	return agentruntime.WriteFileOwned(KeyfilePath(c.RunDir), key, 0o400, c.Credential)
}

func (e *Engine) password() (string, error) {
	b, err := os.ReadFile(filepath.Join(e.Config.SecretDir, PasswordKey))
	if err != nil {
		return "", fmt.Errorf("reading the administrator's password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Command implements fwagent.Engine.
func (e *Engine) Command() *exec.Cmd {
	c := e.Config
	var cmd *exec.Cmd
	if e.ferret() {
		// The administrator is FerretDB's setup user, created when the data directory is new. Its
		// password goes through the environment, not the command line other processes can read.
		cmd = exec.Command(e.binary("ferretdb"), "--handler=sqlite", "--sqlite-url=file:"+c.DataDir+"/",
			"--state-dir="+c.DataDir, "--listen-addr=:"+strconv.Itoa(c.Port), "--debug-addr=-",
			"--telemetry=disable", "--test-enable-new-auth", "--log-level=info")
		password, _ := e.password() // Bootstrap read it
		cmd.Env = append(os.Environ(), "FERRETDB_SETUP_DATABASE=admin", "FERRETDB_SETUP_USERNAME="+c.User,
			"FERRETDB_SETUP_PASSWORD="+password)
	} else {
		cmd = exec.Command(e.binary("mongod"), "--config", filepath.Join(c.ConfigDir, ConfigFile))
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, c.Env...)
	cmd.Dir = c.RunDir
	if cr := c.Credential; cr != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cr}
	}
	return cmd
}

// binary finds the server: in BinDir, on $PATH, or at the root of an image made of the binary alone.
func (e *Engine) binary(name string) string {
	if d := e.Config.BinDir; d != "" {
		return filepath.Join(d, name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/" + name); err == nil {
		return "/" + name
	}
	return name
}

// StopSignal implements fwagent.Engine: both servers shut down cleanly on SIGTERM.
func (e *Engine) StopSignal() os.Signal { return syscall.SIGTERM }

// hello is the part of MongoDB's hello reply the agent reads.
type hello struct {
	IsWritablePrimary bool   `bson:"isWritablePrimary"`
	Secondary         bool   `bson:"secondary"`
	SetName           string `bson:"setName"`
}

// Status implements fwagent.Engine from `hello`, which needs no login: the primary accepts
// writes once the operator's administrator logs in with the Secret's password (ensureAdmin), a
// secondary serves reads and replicates.
func (e *Engine) Status(ctx context.Context) fwagent.Status {
	h, err := e.hello(ctx)
	switch {
	case err != nil:
		return fwagent.Status{Detail: "the server does not answer yet: " + err.Error()}
	case h.IsWritablePrimary:
		if password, err := e.password(); err != nil || !e.adminVerified(password) {
			return fwagent.Status{Detail: "the administrator does not log in with the Secret's password yet", Role: RolePrimary}
		}
		return fwagent.Status{Ready: true, Role: RolePrimary}
	case h.Secondary:
		return fwagent.Status{Ready: true, Role: RoleReplica}
	case h.SetName == "":
		return fwagent.Status{Detail: "not a member of the replica set yet"}
	}
	return fwagent.Status{Detail: "neither primary nor secondary (starting, recovering or catching up)"}
}

func (e *Engine) hello(ctx context.Context) (hello, error) {
	var h hello
	c, err := e.localClient()
	if err != nil {
		return h, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h)
	return h, err
}

func (e *Engine) localURI() string {
	return fmt.Sprintf("mongodb://127.0.0.1:%d/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=2000", e.Config.Port)
}

func (e *Engine) localClient() (*mongo.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.local == nil {
		c, err := mongo.Connect(options.Client().ApplyURI(e.localURI()))
		if err != nil {
			return nil, err
		}
		e.local = c
	}
	return e.local, nil
}

// adminClient logs in as the administrator; a changed password makes a new client.
func (e *Engine) adminClient() (*mongo.Client, error) {
	password, err := e.password()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.admin != nil && e.adminPassword == password {
		return e.admin, nil
	}
	if e.admin != nil {
		_ = e.admin.Disconnect(context.Background())
	}
	c, err := mongo.Connect(e.adminOptions(password))
	if err != nil {
		return nil, err
	}
	e.admin, e.adminPassword = c, password
	return c, nil
}

// adminOptions connect to this member as the administrator with password.
func (e *Engine) adminOptions(password string) *options.ClientOptions {
	return options.Client().ApplyURI(e.localURI()).SetAuth(options.Credential{
		AuthSource: "admin", Username: e.Config.User, Password: password, AuthMechanism: "SCRAM-SHA-256"})
}

// Act implements fwagent.Actor.
func (e *Engine) Act(ctx context.Context, action string, params url.Values) error {
	if e.ferret() {
		return fmt.Errorf("%s: FerretDB has no replica sets", action)
	}
	switch action {
	case ActionStepDown:
		return e.stepDown(ctx)
	case ActionRemoveMember:
		return e.removeMember(ctx, params.Get(ParamHost))
	}
	return fmt.Errorf("no action %q (have: %s, %s)", action, ActionStepDown, ActionRemoveMember)
}
