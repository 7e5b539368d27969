package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A new server restored to a point in time by its own agent (Config.Recovery), as the first pod of
// a restored instance is, with real PostgreSQL and MinIO: the physical backup the Job would take,
// rows before and after a target, and the agent bootstraps from the store to exactly the rows
// committed before it, promotes, and after a restart carries no recovery settings that a replica
// cloned from it would inherit; to a log position (targetLSN), likewise. A target before the
// backup was complete, and an archive with a hole, are refused before the server starts, and
// nothing is left behind to start from. A target after the archive's last transaction recovers
// the whole archive.
func TestTheAgentRestoresToAPointInTime(t *testing.T) {
	ctx := context.Background()
	srv := archivingServer(t)
	e := srv.e
	execSQL(t, e, "CREATE TABLE public.orders (id int PRIMARY KEY)", "INSERT INTO public.orders SELECT generate_series(1, 50)")

	const dir = "shop/orders/base-1"
	completed := srv.baseBackup(t, dir).Base.Completed
	execSQL(t, e, "INSERT INTO public.orders SELECT generate_series(51, 100)")
	lsn := query(t, e, "SELECT pg_current_wal_insert_lsn()::text")
	middle := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	target := query(t, e, `SELECT to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	time.Sleep(1500 * time.Millisecond)
	execSQL(t, e, "INSERT INTO public.orders SELECT generate_series(101, 150)")
	last := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error { return srv.archive.Get(ctx, last, io.Discard) })

	// The pod's recovery configuration: the source's store and archive, the backup, the target.
	raw, err := os.ReadFile(srv.configFile)
	if err != nil {
		t.Fatal(err)
	}
	recoveryFile := func(target string) string {
		var c backup.RecoveryConfig
		if err := json.Unmarshal(raw, &c.SegmentConfig); err != nil {
			t.Fatal(err)
		}
		// Every target here is in the archive when the recovery starts, as the operator says
		// when the source's recoverable window reaches it.
		c.Backup, c.TargetTime, c.TargetArchived = dir, target, true
		if strings.Contains(target, "/") { // a log position
			c.TargetTime, c.TargetLSN, c.TargetArchived = "", target, false
		}
		b, _ := json.Marshal(c)
		f := filepath.Join(filepath.Dir(srv.configFile), fmt.Sprintf("recovery-%d.json", time.Now().UnixNano()))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Refused before anything starts: a target before the backup was complete, a hole in the archive.
	refused := func(target, want string) {
		t.Helper()
		c := newConfig(t)
		c.Recovery, c.Manager = recoveryFile(target), srv.bin.Path
		err := (&Engine{Config: c}).Bootstrap(ctx)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("recovering to %q: %v, want %q", target, err, want)
		}
		if _, err := os.Stat(c.DataDir); !os.IsNotExist(err) {
			t.Fatalf("a refused recovery left %s behind (%v)", c.DataDir, err)
		}
	}
	refused(completed.Add(-time.Hour).Format(time.RFC3339), "is before the backup at "+dir+" was complete")
	putBack := srv.setAside(t, middle)
	refused(target, "missing WAL segment "+middle)
	putBack()

	// Restored: exactly the rows committed before the target, a primary on a new timeline.
	c := newConfig(t)
	c.Recovery, c.Manager = recoveryFile(target), srv.bin.Path
	restored := &Engine{Config: c}
	r := start(t, restored)
	waitPrimary := func() {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, func() error {
			if st := r.status(t); st.Role != "primary" || !st.Ready {
				return fmt.Errorf("%+v, want a ready primary", st)
			}
			return nil
		})
	}
	waitPrimary()
	if got := query(t, restored, "SELECT count(*) || ' ' || max(id) FROM public.orders"); got != "100 100" {
		t.Fatalf("restored to %s: %s rows and max id, want the 100 committed before it", target, got)
	}
	if tl := query(t, restored, "SELECT timeline_id::text FROM pg_control_checkpoint()"); tl == "1" {
		t.Fatalf("the restored server is still on timeline %s", tl)
	}
	// After a restart the recovery's settings are gone from its configuration, and the rows stay.
	r.stop(t)
	r = start(t, restored)
	waitPrimary()
	if auto, _ := os.ReadFile(filepath.Join(c.DataDir, "postgresql.auto.conf")); bytes.Contains(auto, []byte("restore_command")) ||
		bytes.Contains(auto, []byte("recovery_target")) {
		t.Fatalf("postgresql.auto.conf keeps the recovery's settings:\n%s", auto)
	}
	if got := query(t, restored, "SELECT count(*) FROM public.orders"); got != "100" {
		t.Fatalf("after a restart: %s rows", got)
	}
	r.stop(t)

	// To a log position instead of a time (targetLSN): the same 100 rows, those inserted before it.
	c = newConfig(t)
	c.Recovery, c.Manager = recoveryFile(lsn), srv.bin.Path
	atLSN := &Engine{Config: c}
	r = start(t, atLSN)
	waitPrimary() // (of r, which it reads when called)
	if got := query(t, atLSN, "SELECT count(*) || ' ' || max(id) FROM public.orders"); got != "100 100" {
		t.Fatalf("restored to log position %s: %s rows and max id, want the 100 inserted before it", lsn, got)
	}
	r.stop(t)

	// To a time after the archive's last transaction (a quiet database since): PostgreSQL alone
	// would refuse to end a recovery that never passed its target, at every start; the agent
	// replays the archive to its end instead, which is the state at the target: all 150 rows.
	quiet := query(t, e, `SELECT to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	c = newConfig(t)
	c.Recovery, c.Manager = recoveryFile(quiet), srv.bin.Path
	afterLast := &Engine{Config: c}
	r = start(t, afterLast)
	waitPrimary()
	if got := query(t, afterLast, "SELECT count(*) || ' ' || max(id) FROM public.orders"); got != "150 150" {
		t.Fatalf("restored to %s, after the last transaction: %s rows and max id, want all 150", quiet, got)
	}
}
