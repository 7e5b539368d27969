package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// Continuous archiving's first link (issue #27), with a real PostgreSQL and a real MinIO: the
// server's archive_command is the manager's "segments push", which stores each completed WAL
// segment in the archive (encrypted); "segments fetch" brings every one back, verified, and
// pg_waldump reads in them exactly the rows the test inserted. A different segment already under
// the name of the next one stops archiving loudly (pg_stat_archiver's failures, the server's
// retries) and leaves the stored one in place.
func TestArchiveCommandStoresEverySegment(t *testing.T) {
	ctx := context.Background()
	srv := archivingServer(t)
	e, archive, bin := srv.e, srv.archive, srv.bin
	c := e.Config
	var err error
	execSQL(t, e, "CREATE TABLE public.orders (id int PRIMARY KEY, note text)",
		"INSERT INTO public.orders SELECT n, 'order ' || n FROM generate_series(1, 1000) AS n")
	filenode := query(t, e, "SELECT pg_relation_filenode('public.orders')::text")
	last := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	var names []string
	testenv.Eventually(t, time.Minute, func() error {
		if names, err = archive.List(ctx); err != nil {
			return err
		}
		if !slices.Contains(names, last) {
			return fmt.Errorf("the archive holds %v, not yet %s (pg_stat_archiver: %s)", names, last, archiverStats(t, e))
		}
		return nil
	})
	if failed := query(t, e, "SELECT failed_count::text FROM pg_catalog.pg_stat_archiver"); failed != "0" {
		t.Fatalf("the archiver failed %s times: %s", failed, archiverStats(t, e))
	}
	srv.archivingFigures(t, func(archived, failures, backlog float64) error {
		if archived < float64(len(names)) || failures != 0 || backlog != 0 {
			return fmt.Errorf("archived %v, failures %v, backlog %v; want %d, 0, 0", archived, failures, backlog, len(names))
		}
		return nil
	})
	// The primary's status tells the operator (its ContinuousArchiving condition).
	if a := e.Status(ctx).Archive; a == nil || a.Failing() || a.LastArchived != last || a.Backlog != 0 {
		t.Fatalf("the primary's archive status: %+v, want %s archived and nothing failing or waiting", a, last)
	}

	// Every archived segment comes back, verified, and holds the table's 1,000 inserts in all.
	fetched := t.TempDir()
	inserts := 0
	insert := regexp.MustCompile(`desc: INSERT(\+INIT)? .*rel \d+/\d+/` + filenode + `\b`)
	for _, name := range names {
		if out, err := exec.Command(bin.Path, srv.segments("fetch", name, filepath.Join(fetched, name))...).CombinedOutput(); err != nil {
			t.Fatalf("segments fetch %s: %v\n%s", name, err, out)
		}
		out, err := exec.Command(filepath.Join(c.BinDir, "pg_waldump"), filepath.Join(fetched, name)).CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("invalid record length")) && !bytes.Contains(out, []byte("record with incorrect prev-link")) {
			t.Fatalf("pg_waldump %s: %v\n%s", name, err, lastLines(out))
		}
		for _, line := range strings.Split(string(out), "\n") {
			if insert.MatchString(line) {
				inserts++
			}
		}
	}
	if inserts != 1000 {
		t.Fatalf("the archived WAL holds %d inserts into public.orders, want 1000 (segments %v)", inserts, names)
	}
	if out, err := exec.Command(bin.Path, srv.segments("fetch", "00000001000000FF000000FF", filepath.Join(fetched, "missing"))...).CombinedOutput(); err == nil {
		t.Fatalf("a segment never archived was fetched: %s", out)
	}
	if _, err := os.Stat(filepath.Join(fetched, "missing")); !os.IsNotExist(err) {
		t.Fatalf("a failed fetch left a file: %v", err)
	}

	// Another segment under the next one's name: the server's archiving stops, loudly, and the
	// stored object stays.
	// (After a switch the position is the new segment's first byte, which pg_walfile_name names
	// as the segment before: a row first.)
	execSQL(t, e, "INSERT INTO public.orders VALUES (1001, 'after')")
	next := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	planted := []byte("not this server's WAL")
	if err := archive.Put(ctx, next, bytes.NewReader(planted)); err != nil {
		t.Fatal(err)
	}
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error {
		if stats := archiverStats(t, e); !strings.Contains(stats, "last_failed_wal="+next) {
			return fmt.Errorf("pg_stat_archiver: %s", stats)
		}
		return nil
	})
	// The agent's figures show it: failures, and the stuck segment waiting; so does its status.
	srv.archivingFigures(t, func(_, failures, backlog float64) error {
		if failures < 1 || backlog < 1 {
			return fmt.Errorf("failures %v, backlog %v; want both at least 1", failures, backlog)
		}
		return nil
	})
	if a := e.Status(ctx).Archive; a == nil || !a.Failing() || a.LastFailed != next || a.Backlog < 1 {
		t.Fatalf("the primary's archive status: %+v, want %s failing and waiting", a, next)
	}
	var got bytes.Buffer
	if err := archive.Get(ctx, next, &got); err != nil || !bytes.Equal(got.Bytes(), planted) {
		t.Fatalf("the stored %s was replaced: %v", next, err)
	}
}

// The archive status says how far the archive reaches by what it holds, not by when it last
// stored something (issue #27's recoverable window): with the store out of reach a completed
// segment waits; a row committed after it, in the segment being written, is not in the archive
// even once the waiting segment is stored, later than that commit.
func TestArchiveStatusReachesWhatTheArchiveHolds(t *testing.T) {
	ctx := context.Background()
	srv := archivingServer(t)
	e := srv.e
	good, err := os.ReadFile(srv.configFile)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, e, "CREATE TABLE public.ledger (id int)", "INSERT INTO public.ledger VALUES (1)")
	first := dbClock(t, e)
	e.Status(ctx) // the first row's position, sampled
	// The store out of reach: the segment holding the first row completes and waits.
	if err := os.WriteFile(srv.configFile, []byte(`{"url": "s3://nowhere"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waiting := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	execSQL(t, e, "INSERT INTO public.ledger VALUES (2)")
	second := dbClock(t, e)
	e.Status(ctx)
	testenv.Eventually(t, time.Minute, func() error {
		return expectArchiver(archiverStats(t, e), "last_failed_wal="+waiting)
	})
	// The store back: the waiting segment is stored (after the second row's commit), the
	// segment being written is not.
	if err := os.WriteFile(srv.configFile, good, 0o644); err != nil {
		t.Fatal(err)
	}
	query(t, e, "SELECT pg_reload_conf()::text") // wakes the archiver up from its pause after failures
	var a *fwagent.ArchiveStatus
	testenv.Eventually(t, 2*time.Minute, func() error {
		if a = e.Status(ctx).Archive; a == nil || a.LastArchived != waiting {
			return fmt.Errorf("the archive status %+v, want %s stored", a, waiting)
		}
		return nil
	})
	if a.LastArchivedTime == nil || !a.LastArchivedTime.After(second) {
		t.Fatalf("the waiting segment was stored at %v, want after the second row's commit at %v", a.LastArchivedTime, second)
	}
	if a.ArchivedThrough == nil || a.ArchivedThrough.Before(first) || !a.ArchivedThrough.Before(second) {
		t.Fatalf("the archive reaches %v, want from the first row's commit (%v) to before the second's (%v), which only the segment being written holds",
			a.ArchivedThrough, first, second)
	}
	// The second row's segment switched out and stored, with nothing written since: the archive
	// reaches the second row.
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error {
		if a = e.Status(ctx).Archive; a == nil || a.ArchivedThrough == nil || a.ArchivedThrough.Before(second) {
			return fmt.Errorf("the archive status %+v, want it to reach the second row's commit at %v", a, second)
		}
		return nil
	})
	// Only PostgreSQL's own records since the stored end (a checkpoint, no transaction): the
	// archive holds every transaction up to the latest sample, though no segment reaches its
	// position. (Retried: an autovacuum's ANALYZE is a transaction, which rightly stops it.)
	testenv.Eventually(t, 2*time.Minute, func() error {
		// The segment just completed, or the last one when there was nothing to switch (a
		// position on a boundary names the next segment from PostgreSQL 17 on: one byte back).
		stored := query(t, e, "SELECT pg_walfile_name(pg_switch_wal() - 1)")
		if a = e.Status(ctx).Archive; a == nil || a.LastArchived != stored {
			return fmt.Errorf("the archive status %+v, want %s stored", a, stored)
		}
		execSQL(t, e, "CHECKPOINT")
		checkpointed := dbClock(t, e)
		if a = e.Status(ctx).Archive; a == nil || a.ArchivedThrough == nil || a.ArchivedThrough.Before(checkpointed) {
			return fmt.Errorf("after a checkpoint: the archive status %+v, want it to reach %v", a, checkpointed)
		}
		return nil
	})
}

// A base backup ends by storing its history file (<segment>.<offset>.backup) after the segment
// it ended in: the archive reaches a row committed during the backup once that segment is stored,
// with nothing written since. (By the name of the file stored last it would not: the history
// file's says nothing of where the backup ended.)
func TestArchiveStatusReachesThroughABaseBackup(t *testing.T) {
	ctx := context.Background()
	srv := archivingServer(t)
	e := srv.e
	execSQL(t, e, "CREATE TABLE public.ledger (id int)")
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error {
		if a := e.Status(ctx).Archive; a == nil || a.Backlog != 0 || a.ArchivedThrough == nil {
			return fmt.Errorf("the archive status %+v, want nothing waiting", a)
		}
		return nil
	})
	backupConn := connect(t, e)
	defer backupConn.Close(ctx)
	if _, err := backupConn.Exec(ctx, "SELECT pg_backup_start('drill', true)"); err != nil {
		t.Fatal(err)
	}
	execSQL(t, e, "INSERT INTO public.ledger VALUES (1)")
	committed := dbClock(t, e)
	e.Status(ctx) // the row's position, sampled during the backup
	if _, err := backupConn.Exec(ctx, "SELECT * FROM pg_backup_stop(false)"); err != nil {
		t.Fatal(err)
	}
	// Not sampled again until everything is stored: a sample between the segment and the
	// history file would see the segment stored last.
	testenv.Eventually(t, time.Minute, func() error {
		return expectArchiver(query(t, e, `SELECT format('stored last %s, waiting %s', last_archived_wal,
			(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')) FROM pg_stat_archiver`), ".backup, waiting 0")
	})
	a := e.Status(ctx).Archive
	if a == nil || a.ArchivedThrough == nil || a.ArchivedThrough.Before(committed) {
		t.Fatalf("the archive status %+v, want it to reach the row committed during the backup at %v", a, committed)
	}
	t.Logf("stored last: %s; the archive reaches %v, the row committed at %v", a.LastArchived, a.ArchivedThrough, committed)
}

// dbClock is the database's clock, which commits are stamped with.
func dbClock(t *testing.T, e *Engine) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, query(t, e, `SELECT to_json(clock_timestamp())#>>'{}'`))
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func expectArchiver(stats, want string) error {
	if !strings.Contains(stats, want) {
		return fmt.Errorf("pg_stat_archiver: %s, want %s", stats, want)
	}
	return nil
}

func archiverStats(t *testing.T, e *Engine) string {
	return query(t, e, `SELECT format('archived=%s failed=%s last_archived_wal=%s last_failed_wal=%s', archived_count, failed_count,
		last_archived_wal, last_failed_wal) FROM pg_catalog.pg_stat_archiver`)
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// archiving is a PostgreSQL server whose archive_command is the segment archive's push, into an
// encrypted archive on a real MinIO.
type archiving struct {
	e          *Engine
	agent      *running
	archive    *backup.SegmentArchive
	configFile string
	bin        agenttest.Binary
	key        []byte
	system     uint64
}

func archivingServer(t testing.TB) *archiving {
	t.Helper()
	st := newArchiveStore(t)
	configFile := st.config(t, "archive.json", st.minio.URL())
	// The agent's own archiving (Config.ArchiveConfig), as a pod with spec.backup.continuous has.
	c := newConfig(t)
	c.ArchiveConfig, c.Manager = configFile, st.bin.Path
	e := &Engine{Config: c}
	r := start(t, e)
	system, archive := st.archive(t, c.DataDir, configFile)
	return &archiving{e: e, agent: r, archive: archive, configFile: configFile, bin: st.bin, key: st.key, system: system}
}

// archiveStore is a MinIO server, its credentials and an encryption key in files PostgreSQL's
// user can read, and the manager binary, whose "segments push|fetch" archive_command and
// restore_command run.
type archiveStore struct {
	minio               *testenv.MinIO
	bin                 agenttest.Binary
	dir, creds, keyFile string
	key                 []byte
}

func newArchiveStore(t testing.TB) *archiveStore {
	t.Helper()
	st := &archiveStore{minio: testenv.StartMinIO(t), bin: agenttest.Build(t, "archive"),
		key: []byte("Kx7q-archive-test-key-9f2LmZp0vR8sT3wYbN")}
	dir, err := os.MkdirTemp("", "pgarchive-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st.dir, st.creds, st.keyFile = dir, st.minio.CredentialsDir(t, dir), filepath.Join(dir, "key")
	if err := os.WriteFile(st.keyFile, st.key, 0o644); err != nil {
		t.Fatal(err)
	}
	return st
}

// config writes an archive's configuration (as the operator mounts it in a pod) for the store at
// url, with the tests' prefix and directory, and returns its path.
func (st *archiveStore) config(t testing.TB, name, url string) string {
	t.Helper()
	file := filepath.Join(st.dir, name)
	cfg, _ := json.Marshal(backup.SegmentConfig{URL: url, Prefix: "team-a", Dir: "shop/orders/wal", CredentialsDir: st.creds, KeyFile: st.keyFile})
	if err := os.WriteFile(file, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// archive opens the archive of configFile in the directory of the database system at dataDir,
// where its segments go.
func (st *archiveStore) archive(t testing.TB, dataDir, configFile string) (uint64, *backup.SegmentArchive) {
	t.Helper()
	archive, err := backup.OpenSegmentArchive(context.Background(), configFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archive.Store.Close() })
	system, err := systemIdentifier(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	archive.Dir = path.Join(archive.Dir, strconv.FormatUint(system, 10))
	return system, archive
}

// baseBackup takes a base backup as a backup Job takes it: through the agent's endpoint (mutual
// TLS), into the store under dir, with its start in the log in the manifest.
func (a *archiving) baseBackup(t testing.TB, dir string) backup.Manifest {
	t.Helper()
	m := backup.Manifest{Engine: "postgres", Namespace: "shop", Instance: "orders", Backup: path.Base(dir),
		Method: backup.MethodPhysical, Base: &fwagent.BaseBackupInfo{}}
	m, err := backup.Write(context.Background(), a.archive.Store, dir, m, a.key, func(ctx context.Context, w io.Writer) error {
		info, err := a.agent.agent().BaseBackup(ctx, w)
		*m.Base = info
		return err
	})
	if err != nil {
		t.Fatalf("base backup: %v", err)
	}
	return m
}

// setAside moves the archived (encrypted) segment name out of the archive's sight, and returns
// what puts it back.
func (a *archiving) setAside(t testing.TB, name string) (putBack func()) {
	t.Helper()
	ctx := context.Background()
	bucket, key := a.archive.Store.Bucket, a.archive.Store.Key(a.archive.Dir, name+".gz.enc")
	if err := bucket.Copy(ctx, key+".aside", key, nil); err != nil || bucket.Delete(ctx, key) != nil {
		t.Fatalf("setting %s aside: %v", name, err)
	}
	return func() {
		t.Helper()
		if err := bucket.Copy(ctx, key, key+".aside", nil); err != nil {
			t.Fatal(err)
		}
	}
}

// segments is the segment command, as archive_command and restore_command run it on this server.
func (a *archiving) segments(verb string, args ...string) []string {
	return append([]string{"segments", verb, "--config", a.configFile, "--system", strconv.FormatUint(a.system, 10)}, args...)
}

// archivingFigures scrapes the agent until check accepts its archiving figures.
func (a *archiving) archivingFigures(t *testing.T, check func(archived, failures, backlog float64) error) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		m, err := a.agent.tls.Scrape(context.Background(), a.agent.metrics, scrapeToken)
		if err != nil {
			return err
		}
		archived, ok1 := m.Value("datafleet_postgres_archived_segments_total")
		failures, ok2 := m.Value("datafleet_postgres_archive_failures_total")
		backlog, ok3 := m.Value("datafleet_postgres_archive_backlog_segments")
		if _, ok := m.Value("datafleet_postgres_archive_last_success_timestamp_seconds"); !ok || !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("archiving figures missing:\n%s", m)
		}
		return check(archived, failures, backlog)
	})
}
