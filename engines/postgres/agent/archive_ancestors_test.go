package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A failover during an archiving backlog leaves no hole in the archive (issue #27), with real
// PostgreSQL, a real MinIO and two agents coordinated through a Lease on a real API server. The
// primary pg-0 cannot reach the store (its configuration names a closed port on loopback), so
// every segment it completes waits in its pg_wal; the replica pg-1 receives them by streaming.
// pg-0 stops, pg-1 is elected and promoted, and archives the completed segments of timeline 1 it
// received before its own timeline 2. pg-0 comes back with the working store and, switched over
// to, archives what waited on it and what it received: the archive holds each already, byte for
// byte, and nothing conflicts. A base backup taken from pg-1 before all of it recovers, from the
// store alone, every row committed on the three timelines; without one of the segments that
// waited on pg-0 the chain check refuses it, naming it.
func TestAFailoverDuringAnArchiveBacklogLeavesNoHole(t *testing.T) {
	ctx := context.Background()
	st := newArchiveStore(t)
	working := st.config(t, "archive.json", st.minio.URL())
	away := st.config(t, "away.json", strings.Replace(st.minio.URL(), st.minio.Endpoint, "http://127.0.0.1:1", 1))
	rs := newReplicaSet(t, 2, "")
	p0, p1 := rs.members["pg-0"], rs.members["pg-1"]
	p0.e.Config.ArchiveConfig, p0.e.Config.Manager = away, st.bin.Path
	p1.e.Config.ArchiveConfig, p1.e.Config.Manager = working, st.bin.Path
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	system, archive := st.archive(t, p0.e.Config.DataDir, working)

	execSQL(t, p0.e, "CREATE TABLE public.orders (id int PRIMARY KEY)", "INSERT INTO public.orders SELECT generate_series(1, 100)")
	rs.waitRow("pg-1", "SELECT count(*)::text FROM public.orders", "100")
	// From the replica: a base backup from the primary would wait for its archiver, which fails.
	const dir = "shop/orders/base/1"
	m := (&archiving{agent: p1.r, archive: archive, key: st.key}).baseBackup(t, dir)
	// Three more segments of rows, each completed and left waiting on pg-0.
	var waiting []string
	for i := range 3 {
		execSQL(t, p0.e, fmt.Sprintf("INSERT INTO public.orders SELECT generate_series(%d, %d)", 101+100*i, 200+100*i))
		waiting = append(waiting, query(t, p0.e, "SELECT pg_walfile_name(pg_current_wal_lsn())"))
		query(t, p0.e, "SELECT pg_switch_wal()::text")
	}
	execSQL(t, p0.e, "INSERT INTO public.orders VALUES (401)")
	rs.waitRow("pg-1", "SELECT count(*)::text FROM public.orders", "401")
	testenv.Eventually(t, time.Minute, func() error {
		if n := readySegments(t, p0.e); n < len(waiting) {
			return fmt.Errorf("pg-0 has %d segments waiting to be archived, want at least %d", n, len(waiting))
		}
		return nil
	})
	for _, name := range waiting {
		if err := archive.Get(ctx, name, io.Discard); err == nil {
			t.Fatalf("segment %s is in the archive although pg-0 cannot reach it and replicas archive nothing", name)
		}
	}

	// Failover: pg-0 stops with its backlog, pg-1 is promoted and writes on timeline 2.
	p0.r.stop(t)
	rs.elect("", 1)
	rs.waitRole("pg-1", "primary")
	execSQL(t, p1.e, "INSERT INTO public.orders VALUES (1000)")
	last := query(t, p1.e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, p1.e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error {
		for _, name := range append(waiting, last) {
			if err := archive.Get(ctx, name, io.Discard); err != nil {
				return err
			}
		}
		return nil
	})

	// pg-0 comes back with the working store and rejoins. Switched over to, it archives what still
	// waits in its pg_wal and, as a promoted member, the completed segments it received: the
	// archive holds each already, byte for byte, so nothing fails and nothing stays waiting (a
	// conflict would fail its archiver on every retry).
	p0.e.Config.ArchiveConfig = working
	rs.start("pg-0")
	rs.waitRole("pg-0", "replica")
	rs.waitRow("pg-0", "SELECT count(*)::text FROM public.orders", "402")
	query(t, p0.e, "SELECT pg_stat_reset_shared('archiver')::text")
	rs.requestStepDown("pg-0")
	rs.restartedInPlace("pg-1", "asked to step down")
	rs.elect("pg-0", 1)
	rs.waitRole("pg-0", "primary")
	execSQL(t, p0.e, "INSERT INTO public.orders VALUES (1001)")
	last = query(t, p0.e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, p0.e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error {
		if n := readySegments(t, p0.e); n != 0 {
			return fmt.Errorf("pg-0 has %d segments waiting to be archived (%s)", n, archiverStats(t, p0.e))
		}
		return expectArchiver(archiverStats(t, p0.e), "failed=0 ")
	})

	// The base backup taken before all of it recovers, from the store alone, every row of the
	// three timelines. (Last: the recovered copy archives with the configuration it was backed up
	// with, and would take timeline 3's name before pg-0.)
	restored := filepath.Join(filepath.Dir(p1.e.Config.DataDir), "restored")
	srv := &archiving{e: p1.e, archive: archive, key: st.key}
	unpack(t, srv, dir, m, restored)
	chain, err := CheckWALChain(ctx, archive, restored, WALSegmentSize)
	if err != nil || chain.Timeline != 3 || chain.Last < last {
		t.Fatalf("the WAL chain across the failovers: %+v (%v), want timeline 3 to at least %s", chain, err, last)
	}
	putBack := srv.setAside(t, waiting[1])
	if _, err := CheckWALChain(ctx, archive, restored, WALSegmentSize); err == nil || !strings.Contains(err.Error(), "missing WAL segment "+waiting[1]) {
		t.Fatalf("without %s the chain: %v", waiting[1], err)
	}
	putBack()
	fetch := segmentCommand(st.bin.Path, "fetch", working, strconv.FormatUint(system, 10))
	if err := PrepareRecovery(restored, fetch, RecoveryTarget{Timeline: chain.Timeline}, p1.e); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, startRecovered(t, p1.e, restored)); got != "1-401,1000-1001" {
		t.Fatalf("recovered from the store across the failovers: orders holds %s, want 1-401,1000-1001", got)
	}
}

// readySegments counts the segments waiting in pg_wal to be archived.
func readySegments(t *testing.T, e *Engine) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.Config.DataDir, "pg_wal", "archive_status"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".ready") {
			n++
		}
	}
	return n
}

// What a promoted member archives of its pg_wal, on timeline 3 whose history says timeline 1
// ended inside segment 5 and timeline 2 at the start of segment 8: each ancestor's completed
// segments from where it began to the one it ended in, excluded; not a recycled file named after
// a segment to come, a partial or incomplete one, the current timeline's, or one older than the
// archive's oldest (retention removed those).
func TestAncestorSegments(t *testing.T) {
	const seg = WALSegmentSize
	history := []historyEntry{{timeline: 1, switchLSN: 5*seg + 0x60}, {timeline: 2, switchLSN: 8 * seg}}
	files := []walFile{
		{"000000010000000000000002", seg}, {"000000010000000000000003", seg}, {"000000010000000000000004", seg},
		{"000000010000000000000005", seg}, // timeline 1 ended in it: its ".partial" is PostgreSQL's
		{"000000010000000000000005.partial", seg},
		{"000000010000000000000009", seg}, // recycled, named after a segment to come
		{"000000020000000000000004", seg}, // before timeline 2 began
		{"000000020000000000000005", seg}, {"000000020000000000000007", seg},
		{"000000020000000000000006", seg / 2}, // incomplete
		{"000000030000000000000008", seg},     // the current timeline's
		{"00000002.history", 42},
	}
	if got, want := ancestorSegments(history, files, 0), []string{"000000010000000000000002", "000000010000000000000003",
		"000000010000000000000004", "000000020000000000000005", "000000020000000000000007"}; !slices.Equal(got, want) {
		t.Errorf("archived after promotion: %v, want %v", got, want)
	}
	floor := archiveFloor([]string{"00000002.history", "000000010000000000000004.partial", "000000020000000000000006", "000000010000000000000003"})
	if floor != 3 {
		t.Fatalf("the archive's floor: %d, want 3", floor)
	}
	if got, want := ancestorSegments(history, files, floor), []string{"000000010000000000000003", "000000010000000000000004",
		"000000020000000000000005", "000000020000000000000007"}; !slices.Equal(got, want) {
		t.Errorf("archived after promotion above the floor: %v, want %v", got, want)
	}
}
