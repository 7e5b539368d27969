package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The agent exports what the server answers through the driver, and nothing it does not: on
// FerretDB (the only server these machines run) serverStatus's connections and operation counters
// where it has them, no replication lag and no oplog window, since it has no replica set.
func TestTheAgentExportsWhatTheServerAnswers(t *testing.T) {
	cfg := ferretConfig(t)
	m := startMember(t, cfg)
	waitPrimary(t, m)
	ctx := context.Background()
	notes := login(t, cfg, "agent-test-secret").Database("app").Collection("notes")
	for i := range 5 {
		if _, err := notes.InsertOne(ctx, bson.D{{Key: "n", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		s, err := m.tls.Scrape(ctx, m.metrics, scrapeToken)
		if err != nil {
			return err
		}
		if v, ok := s.Value("datafleet_mongodb_up"); !ok || v != 1 {
			return fmt.Errorf("datafleet_mongodb_up = %v (%v); served:\n%s", v, ok, s)
		}
		if v, ok := s.Value("datafleet_member_role", "role="+RolePrimary); !ok || v != 1 {
			return fmt.Errorf("no primary role; served:\n%s", s)
		}
		for _, absent := range []string{"datafleet_mongodb_replication_lag_seconds", "datafleet_mongodb_oplog_window_seconds"} {
			if len(s.Series(absent)) > 0 {
				t.Fatalf("%s exported for FerretDB, which has no replica set:\n%s", absent, s)
			}
		}
		t.Logf("served:\n%s", s)
		return nil
	})
}
