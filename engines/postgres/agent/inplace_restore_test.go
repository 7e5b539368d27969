package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A physical backup restored in place into a running pair (real PostgreSQL, a real MinIO, a Lease
// on a real API server; the test plays the operator, which restarts both members with the
// recovery's configuration and names the member that recovers on the lease). Before the name is
// on the lease a restarted member touches nothing. A recovery that cannot finish (a segment missing
// from the archive) puts the member's data back as it was. Named, pg-0 recovers to exactly the rows
// committed before the target and promotes itself, and the data it set aside goes once it has; pg-1
// discards its copy and clones it. A restart after that does not recover again.
func TestAnInPlaceRestoreReplacesEveryMembersData(t *testing.T) {
	ctx := context.Background()
	st := newArchiveStore(t)
	working := st.config(t, "archive.json", st.minio.URL())
	rs := newReplicaSet(t, 2, "")
	p0, p1 := rs.members["pg-0"], rs.members["pg-1"]
	for _, m := range []*member{p0, p1} {
		m.e.Config.ArchiveConfig, m.e.Config.Manager = working, st.bin.Path
	}
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	_, archive := st.archive(t, p0.e.Config.DataDir, working)
	srv := &archiving{e: p0.e, agent: p0.r, archive: archive, key: st.key}

	execSQL(t, p0.e, "CREATE TABLE public.orders (id int PRIMARY KEY)", "INSERT INTO public.orders SELECT generate_series(1, 100)")
	const dir = "shop/orders/base/1"
	srv.baseBackup(t, dir)
	execSQL(t, p0.e, "INSERT INTO public.orders SELECT generate_series(101, 200)")
	middle := query(t, p0.e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, p0.e, "SELECT pg_switch_wal()::text")
	target := query(t, p0.e, `SELECT to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	time.Sleep(1500 * time.Millisecond)
	execSQL(t, p0.e, "INSERT INTO public.orders SELECT generate_series(201, 300)")
	last := query(t, p0.e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, p0.e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error { return archive.Get(ctx, last, io.Discard) })
	rs.waitRow("pg-1", "SELECT count(*)::text FROM public.orders", "300")

	// Both members restart with the restore's configuration, as the operator's pod deletion does.
	restore := func(id string) {
		t.Helper()
		var c backup.RecoveryConfig
		raw, err := os.ReadFile(working)
		if err == nil {
			err = json.Unmarshal(raw, &c.SegmentConfig)
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Backup, c.TargetTime, c.TargetArchived, c.InPlace = dir, target, true, id
		b, _ := json.Marshal(c)
		file := filepath.Join(st.dir, id+".json")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		p0.e.Config.Recovery, p1.e.Config.Recovery = file, file
	}
	p1.r.stop(t)
	p0.r.stop(t)
	aside := p0.e.Config.DataDir + beforeRestoreSuffix

	// Not named yet: nothing is touched.
	restore("restore-1")
	waiting, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := p0.e.Bootstrap(waiting)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("bootstrapping before the operator named the member that recovers: %v, want it to wait", err)
	}
	if _, err := os.Stat(filepath.Join(p0.e.Config.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("pg-0's data before it was named: %v", err)
	}

	// Named, with a segment missing from the archive: refused, and the data is back in place.
	rs.name("pg-0", "restore-0")
	restore("restore-0")
	putBack := srv.setAside(t, middle)
	if err := p0.e.Bootstrap(ctx); err == nil || !strings.Contains(err.Error(), "missing WAL segment "+middle) {
		t.Fatalf("an in-place recovery without segment %s: %v", middle, err)
	}
	putBack()
	if _, err := os.Stat(aside); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed recovery left the data aside (%v)", err)
	}
	p0.e.Config.Recovery = "" // the restore given up: the operator's Secret gone
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	if got := query(t, p0.e, "SELECT count(*)::text FROM public.orders"); got != "300" {
		t.Fatalf("pg-0's data after a failed recovery: %s rows, want the 300 it had", got)
	}
	p0.r.stop(t)

	// Named: pg-0 recovers to the target and promotes itself; what it set aside goes then.
	rs.name("pg-0", "restore-1")
	restore("restore-1")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	conn := connect(t, p0.e)
	if got := rowsOf(t, conn); got != "1-200" {
		t.Fatalf("restored in place to %s: orders holds %s, want the rows committed before it, 1-200", target, got)
	}
	conn.Close(ctx)
	testenv.Eventually(t, time.Minute, func() error {
		if _, err := os.Stat(aside); !errors.Is(err, os.ErrNotExist) {
			return errors.New("the data set aside is still there after the promotion")
		}
		return nil
	})
	// pg-1 discards its copy (300 rows) and clones the recovered member.
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	execSQL(t, p0.e, "INSERT INTO public.orders VALUES (1000)")
	rs.waitRow("pg-1", "SELECT count(*) || ' ' || max(id) FROM public.orders", "201 1000")

	// A restart with the configuration still mounted does not recover again (the stopped primary
	// hands the lease back; the test elects it again, as the operator would).
	p1.r.stop(t)
	p0.r.stop(t)
	rs.start("pg-0")
	rs.elect("pg-0", 1)
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	rs.waitRow("pg-1", "SELECT count(*)::text FROM public.orders", "201")
	if got := query(t, p0.e, "SELECT count(*)::text FROM public.orders"); got != "201" {
		t.Fatalf("after a restart pg-0 has %s rows, want the 201 it had: it recovered again", got)
	}
}

// name does the operator's part once every member restarted for the in-place restore id: it
// names member on the lease to recover.
func (rs *replicaSet) name(member, id string) {
	rs.t.Helper()
	if _, err := primary.AssignRecovery(context.Background(), rs.env.Client, rs.lease(), member, id, time.Now()); err != nil {
		rs.t.Fatal(err)
	}
}
