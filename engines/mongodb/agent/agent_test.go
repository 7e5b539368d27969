package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// member runs the agent with FerretDB (no mongod can run on these machines) until the test ends
// or stop is called.
type member struct {
	addr    string // the agent's address
	metrics string // its metrics endpoint, which answers scrapeToken
	tls     *agenttest.Instance
	stop    func()
}

// scrapeToken is the scrape token the test agents answer (agenttest.Instance.ScrapeToken).
const scrapeToken = "the fleet's scrape token"

func startMember(t *testing.T, cfg Config) *member {
	t.Helper()
	m := &member{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), metrics: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), tls: agenttest.New(t)}
	m.tls.ScrapeToken(t, scrapeToken)
	listen := m.tls.Listen(m.addr)
	listen.MetricsAddr = m.metrics
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_ = agentruntime.Run(ctx, &Engine{Config: cfg}, listen)
	}()
	m.stop = func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop within 30 s")
		}
	}
	t.Cleanup(m.stop)
	return m
}

func ferretConfig(t *testing.T) Config {
	bin := t.TempDir()
	// The agent runs the binary named ferretdb; the cache names it by version.
	if err := os.Symlink(testenv.FerretDBBinary(t), filepath.Join(bin, "ferretdb")); err != nil {
		t.Fatal(err)
	}
	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, PasswordKey), []byte("agent-test-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{Server: ServerFerretDB, BinDir: bin, SecretDir: secret, ConfigDir: t.TempDir(),
		DataDir: filepath.Join(t.TempDir(), "db"), RunDir: filepath.Join(t.TempDir(), "run"), Port: testenv.FreePort(t),
		User: AdminUser}
}

func login(t *testing.T, cfg Config, password string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://127.0.0.1:%d/?directConnection=true", cfg.Port)).
		SetServerSelectionTimeout(5 * time.Second).
		SetAuth(options.Credential{AuthSource: "admin", Username: cfg.User, Password: password, AuthMechanism: "SCRAM-SHA-256"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// The agent runs FerretDB with the operator's administrator from the Secret, reports the member
// primary once it answers, keeps the data and the administrator across a restart, and refuses
// replica-set actions FerretDB cannot carry out.
func TestAgentRunsFerretDB(t *testing.T) {
	cfg := ferretConfig(t)
	m := startMember(t, cfg)
	waitPrimary(t, m)
	ctx := context.Background()
	c := login(t, cfg, "agent-test-secret")
	if _, err := c.Database("app").Collection("notes").InsertOne(ctx, bson.D{{Key: "note", Value: "kept"}}); err != nil {
		t.Fatalf("inserting as the administrator: %v", err)
	}
	var wrong bson.M
	if err := login(t, cfg, "not-the-secret").Database("admin").RunCommand(ctx, bson.D{{Key: "connectionStatus", Value: 1}}).Decode(&wrong); err == nil {
		t.Error("a wrong password logged in")
	}
	err := (&Engine{Config: cfg}).Act(ctx, ActionStepDown, nil)
	if err == nil || err.Error() != "step-down: FerretDB has no replica sets" {
		t.Errorf("step-down on FerretDB: got %v, want a refusal", err)
	}

	m.stop()
	m = startMember(t, cfg)
	waitPrimary(t, m)
	n, err := login(t, cfg, "agent-test-secret").Database("app").Collection("notes").CountDocuments(ctx, bson.D{{Key: "note", Value: "kept"}})
	if err != nil || n != 1 {
		t.Fatalf("after a restart: %d documents, %v; want the one written before", n, err)
	}
}

// A member started over a data directory that outlived its Secret (a retained volume re-bound
// after a namespace deletion: the Secret is generated again) lets the operator in with the new
// password, keeps its documents, and is not reported ready before that; the old password no
// longer logs in.
func TestAMemberOverDataThatOutlivedItsSecretLetsTheOperatorIn(t *testing.T) {
	cfg := ferretConfig(t)
	m := startMember(t, cfg)
	waitPrimary(t, m)
	ctx := context.Background()
	if _, err := login(t, cfg, "agent-test-secret").Database("app").Collection("notes").InsertOne(ctx, bson.D{{Key: "note", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	m.stop()

	if err := os.WriteFile(filepath.Join(cfg.SecretDir, PasswordKey), []byte("a-new-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = startMember(t, cfg)
	waitPrimary(t, m)
	n, err := login(t, cfg, "a-new-secret").Database("app").Collection("notes").CountDocuments(ctx, bson.D{{Key: "note", Value: "kept"}})
	if err != nil || n != 1 {
		t.Fatalf("with the Secret's new password on a ready member: %d documents, %v; want the one written before", n, err)
	}
	if err := login(t, cfg, "agent-test-secret").Database("admin").RunCommand(ctx, bson.D{{Key: "connectionStatus", Value: 1}}).Err(); err == nil {
		t.Error("the old password still logs in")
	}
}

// waitPrimary waits for the agent to report its member a ready primary.
func waitPrimary(t *testing.T, m *member) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		st, err := m.tls.At(m.addr).Status(context.Background())
		if err != nil {
			return err
		}
		if !st.Ready || st.Role != RolePrimary {
			return fmt.Errorf("status %+v, want ready primary", *st)
		}
		return nil
	})
}
