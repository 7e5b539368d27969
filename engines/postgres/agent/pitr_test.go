package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A point-in-time recovery from the store alone, with real PostgreSQL and MinIO: a base backup
// (pg_basebackup's tar, encrypted into the store as any backup), rows committed after it, a
// recorded time, rows committed after that; then a new data directory unpacked from the store's
// base backup recovers through the segment archive's fetch to the recorded time. It holds exactly
// the rows committed before it: the ones after the base backup come from the archived WAL, the
// ones after the target are not there.
func TestRecoveryToAPointInTimeFromTheStore(t *testing.T) {
	ctx := context.Background()
	srv := archivingServer(t)
	e := srv.e
	execSQL(t, e, "CREATE TABLE public.orders (id int PRIMARY KEY)", "INSERT INTO public.orders SELECT generate_series(1, 50)")

	const dir = "shop/orders/base/1"
	m := srv.baseBackup(t, dir)
	info := *m.Base
	if want := strconv.FormatUint(srv.system, 10); info.System != want || info.Role != "primary" || info.Member != e.Config.Name ||
		info.Completed.Before(info.Started) || info.Started.IsZero() {
		t.Fatalf("the base backup's info: %+v; want system %s, taken from the primary %s", info, want, e.Config.Name)
	}
	execSQL(t, e, "INSERT INTO public.orders SELECT generate_series(51, 100)")
	middle := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text") // rows 51-100 in a segment of their own
	target := query(t, e, "SELECT now()::text")
	time.Sleep(1500 * time.Millisecond) // the next commit is later than the target, on any clock resolution
	execSQL(t, e, "INSERT INTO public.orders SELECT generate_series(101, 150)")
	execSQL(t, e, "INSERT INTO public.orders VALUES (151)") // the segment switched below is not empty
	last := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error { return srv.archive.Get(ctx, last, io.Discard) })

	restored := filepath.Join(filepath.Dir(e.Config.DataDir), "restored")
	if err := backup.Verify(ctx, srv.archive.Store, dir, m, srv.key); err != nil {
		t.Fatal(err)
	}
	unpack(t, srv, dir, m, restored)
	// The start the agent reported is the one in the backup_label it streamed.
	if start, err := backupStartSegment(restored); err != nil || start != info.StartSegment {
		t.Fatalf("the base backup starts at %s (%v); the agent said %s", start, err, info.StartSegment)
	}
	// The archive holds every segment from the base backup's start to the last one; without one
	// in the middle, the recovery is refused before it starts, naming it.
	if chain, err := CheckWALChain(ctx, srv.archive, restored, WALSegmentSize); err != nil || chain.Last < last || chain.Timeline != 1 {
		t.Fatalf("the WAL chain: %+v (%v), want timeline 1 to at least %s", chain, err, last)
	}
	putBack := srv.setAside(t, middle)
	if _, err := CheckWALChain(ctx, srv.archive, restored, WALSegmentSize); err == nil || !strings.Contains(err.Error(), "missing WAL segment "+middle) {
		t.Fatalf("without %s the chain: %v", middle, err)
	}
	putBack()
	fetch := segmentCommand(srv.bin.Path, "fetch", srv.configFile, strconv.FormatUint(srv.system, 10))
	if err := PrepareRecovery(restored, fetch, RecoveryTarget{Time: target}, e); err != nil {
		t.Fatal(err)
	}
	conn := startRecovered(t, e, restored)
	var count, maxID int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(id) FROM public.orders").Scan(&count, &maxID); err != nil {
		t.Fatal(err)
	}
	if count != 100 || maxID != 100 {
		t.Fatalf("recovered to %s: %d rows up to id %d, want the 100 committed before it", target, count, maxID)
	}

	// Promoted, it archives on a new timeline into the same archive (its configuration is the
	// original's), as a failover's new primary does: its history file and its segments, and
	// nothing of timeline 1 is overwritten (a conflict would fail its archiver).
	if _, err := conn.Exec(ctx, "INSERT INTO public.orders VALUES (1000)"); err != nil {
		t.Fatal(err)
	}
	var switched string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&switched); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		names, err := srv.archive.List(ctx)
		if err != nil {
			return err
		}
		var failed int
		if err := conn.QueryRow(ctx, "SELECT failed_count FROM pg_catalog.pg_stat_archiver").Scan(&failed); err != nil || failed != 0 {
			return fmt.Errorf("the promoted server's archiver failed %d times (%v)", failed, err)
		}
		if !strings.HasPrefix(switched, "00000002") || !slices.Contains(names, "00000002.history") || !slices.Contains(names, switched) {
			return fmt.Errorf("the archive holds %v; want 00000002.history and %s", names, switched)
		}
		return nil
	})
	recoverAcrossTimelines(t, srv, conn, dir, m, switched)
}

// recoverAcrossTimelines goes on from TestRecoveryToAPointInTimeFromTheStore, where timeline 2
// branched off timeline 1 after row 100 (as a failover's promotion does) while the original server
// went on on timeline 1 with rows 101-151. The same base backup recovered to the archive's end
// follows timeline 2 (rows 1-100, 1000 and 1001; none of 101-151), and the chain check names a
// missing segment of timeline 2; a base backup taken on timeline 1 after the branch recovers along
// timeline 1, which PostgreSQL's default (the newest timeline) would refuse.
func recoverAcrossTimelines(t *testing.T, srv *archiving, tl2 *pgx.Conn, dir string, m backup.Manifest, switched string) {
	ctx := context.Background()
	e := srv.e
	if _, err := tl2.Exec(ctx, "INSERT INTO public.orders VALUES (1001)"); err != nil {
		t.Fatal(err)
	}
	var after string
	if err := tl2.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if _, err := tl2.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error { return srv.archive.Get(ctx, after, io.Discard) })

	again := filepath.Join(filepath.Dir(e.Config.DataDir), "restored-again")
	unpack(t, srv, dir, m, again)
	chain, err := CheckWALChain(ctx, srv.archive, again, WALSegmentSize)
	if err != nil || chain.Timeline != 2 || chain.Last < after {
		t.Fatalf("the WAL chain across the failover: %+v (%v), want timeline 2 to at least %s", chain, err, after)
	}
	putBack := srv.setAside(t, switched)
	if _, err := CheckWALChain(ctx, srv.archive, again, WALSegmentSize); err == nil || !strings.Contains(err.Error(), "missing WAL segment "+switched) {
		t.Fatalf("without timeline 2's %s the chain: %v", switched, err)
	}
	putBack()
	fetch := segmentCommand(srv.bin.Path, "fetch", srv.configFile, strconv.FormatUint(srv.system, 10))
	if err := PrepareRecovery(again, fetch, RecoveryTarget{Timeline: chain.Timeline}, e); err != nil {
		t.Fatal(err)
	}
	conn := startRecovered(t, e, again)
	if got := rowsOf(t, conn); got != "1-100,1000-1001" {
		t.Fatalf("recovered across the failover: orders holds %s, want 1-100,1000-1001", got)
	}

	// The original server, still on timeline 1, commits one more row after a second base backup.
	const dir2 = "shop/orders/base/2"
	m2 := srv.baseBackup(t, dir2)
	execSQL(t, e, "INSERT INTO public.orders VALUES (152)")
	last := query(t, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	query(t, e, "SELECT pg_switch_wal()::text")
	testenv.Eventually(t, time.Minute, func() error { return srv.archive.Get(ctx, last, io.Discard) })
	later := filepath.Join(filepath.Dir(e.Config.DataDir), "restored-later")
	unpack(t, srv, dir2, m2, later)
	chain, err = CheckWALChain(ctx, srv.archive, later, WALSegmentSize)
	if err != nil || chain.Timeline != 1 || chain.Last < last {
		t.Fatalf("the WAL chain of a base backup taken after timeline 2 branched off: %+v (%v), want timeline 1 to at least %s", chain, err, last)
	}
	if err := PrepareRecovery(later, fetch, RecoveryTarget{Timeline: chain.Timeline}, e); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, startRecovered(t, e, later)); got != "1-152" {
		t.Fatalf("recovered along timeline 1: orders holds %s, want 1-152", got)
	}
}

// unpack unpacks the base backup at dir of the store into dataDir.
func unpack(t testing.TB, srv *archiving, dir string, m backup.Manifest, dataDir string) {
	t.Helper()
	rc, err := backup.Open(context.Background(), srv.archive.Store, dir, m, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := UnpackBaseBackup(rc, dataDir, srv.e); err != nil {
		t.Fatalf("unpacking the base backup: %v", err)
	}
}

// rowsOf lists the ids of public.orders as runs: "1-100,1000".
func rowsOf(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var runs string
	err := conn.QueryRow(context.Background(), `SELECT string_agg(CASE WHEN lo = hi THEN lo::text ELSE lo || '-' || hi END, ',' ORDER BY lo)
		FROM (SELECT min(id) AS lo, max(id) AS hi FROM (SELECT id, id - row_number() OVER (ORDER BY id) AS g FROM public.orders) r GROUP BY g) runs`).Scan(&runs)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// startRecovered runs PostgreSQL on a data directory prepared for recovery, on its own socket
// (no TCP), and returns a connection once it has been promoted.
func startRecovered(t testing.TB, e *Engine, dataDir string) *pgx.Conn {
	t.Helper()
	sock := dataDir + ".run"
	if err := e.mkdir(sock); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(e.bin("postgres"), "-D", dataDir, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if e.Config.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.Config.Credential}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
		}
	})
	var conn *pgx.Conn
	testenv.Eventually(t, 10*time.Minute, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the recovering server stopped: %v", err)
		default:
		}
		c, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%d user=%s dbname=postgres", sock, port, Superuser))
		if err != nil {
			return err
		}
		var inRecovery bool
		if err := c.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
			c.Close(context.Background())
			return fmt.Errorf("still recovering (%v)", err)
		}
		conn = c
		return nil
	})
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
