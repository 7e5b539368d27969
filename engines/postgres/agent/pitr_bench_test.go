package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
)

// BenchmarkPITR measures point-in-time recovery with real PostgreSQL and MinIO on this machine
// (`make bench-pitr`; figures in docs/backups.md):
//
//   - restore: a base backup of a database of DATAFLEET_BENCH_MB (default 256) MiB in the store,
//     then the WAL of rewriting the whole table once, archived by the segment command; recovered
//     through the store (the base backup streamed, checked and unpacked, the chain checked, each
//     segment fetched, decrypted and checked by restore_command) against plain pg_basebackup's tar
//     of the same moment and replay of the same segments copied from a local directory;
//   - the archiver's cost: its CPU seconds (the archiver process and the segment commands it ran)
//     per GiB of WAL, and a write workload's time and its small commits' latency with archiving on
//     and off;
//   - the achieved RPO: from a commit to the store holding its segment, under steady writes and on
//     a quiet database (archive_timeout 10 s).
func BenchmarkPITR(b *testing.B) {
	mb := 256
	if v := os.Getenv("DATAFLEET_BENCH_MB"); v != "" {
		mb, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	srv := archivingServer(b)
	e := srv.e
	size := fillDatabase(b, e, "bench", mb)
	plain := filepath.Join(filepath.Dir(e.Config.DataDir), "plain") // pg_basebackup and cp run as the postgres user
	if err := e.mkdir(plain); err != nil {
		b.Fatal(err)
	}
	from := query(b, e, "SELECT pg_current_wal_lsn()::text")
	m := srv.baseBackup(b, "bench/base")
	if o, err := e.command(ctx, "pg_basebackup", "--pgdata", filepath.Join(plain, "base"), "--format", "tar", "--wal-method", "none",
		"--checkpoint", "fast", "--no-manifest", "--dbname", e.connString("postgres")).CombinedOutput(); err != nil {
		b.Fatalf("pg_basebackup: %v: %s", err, o)
	}
	execSQLIn(b, e, "bench", "UPDATE t SET payload = md5(payload) || substr(payload, 33)")
	last := query(b, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	wal, _ := strconv.ParseInt(query(b, e, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '"+from+"')::bigint::text"), 10, 64)
	query(b, e, "SELECT pg_switch_wal()::text")
	segments := waitArchived(b, srv, last)
	local := filepath.Join(plain, "wal")
	if err := e.mkdir(local); err != nil {
		b.Fatal(err)
	}
	for _, name := range segments {
		if err := srv.archive.Fetch(ctx, name, filepath.Join(local, name)); err != nil {
			b.Fatal(err)
		}
	}
	chown(b, e, local)

	var timed [2]time.Duration
	b.Run(fmt.Sprintf("restore/db=%dMiB/datafleet", mb), func(b *testing.B) {
		b.SetBytes(size + wal)
		b.Logf("database %d MiB, base backup %d MiB stored, %d MiB of WAL after it in %d segments", size>>20, m.Size>>20, wal>>20, len(segments))
		t0 := time.Now()
		dir := filepath.Join(filepath.Dir(e.Config.DataDir), "restored-datafleet")
		unpack(b, srv, "bench/base", m, dir)
		chain, err := CheckWALChain(ctx, srv.archive, dir, WALSegmentSize)
		if err != nil {
			b.Fatal(err)
		}
		fetch := segmentCommand(srv.bin.Path, "fetch", srv.configFile, strconv.FormatUint(srv.system, 10))
		if err := PrepareRecovery(dir, fetch, RecoveryTarget{Timeline: chain.Timeline}, e); err != nil {
			b.Fatal(err)
		}
		noArchiving(b, dir)
		unpacked := time.Since(t0)
		startRecovered(b, e, dir).Close(ctx)
		timed[0] = time.Since(t0)
		b.Logf("Datafleet: the base backup fetched, checked and unpacked in %s, the archive replayed in %s", unpacked.Round(time.Millisecond), (timed[0] - unpacked).Round(time.Millisecond))
		b.ReportMetric(timed[0].Seconds(), "restore-s")
	})
	b.Run(fmt.Sprintf("restore/db=%dMiB/pg_basebackup+replay", mb), func(b *testing.B) {
		b.SetBytes(size + wal)
		t0 := time.Now()
		dir := filepath.Join(filepath.Dir(e.Config.DataDir), "restored-plain")
		if err := e.mkdir(dir); err != nil {
			b.Fatal(err)
		}
		untar := exec.CommandContext(ctx, "tar", "-xf", filepath.Join(plain, "base", "base.tar"), "-C", dir)
		if c := e.Config.Credential; c != nil {
			untar.SysProcAttr = &syscall.SysProcAttr{Credential: c}
		}
		if o, err := untar.CombinedOutput(); err != nil {
			b.Fatalf("tar: %v: %s", err, o)
		}
		if err := PrepareRecovery(dir, "cp "+local+"/%f %p", RecoveryTarget{}, e); err != nil {
			b.Fatal(err)
		}
		noArchiving(b, dir)
		unpacked := time.Since(t0)
		startRecovered(b, e, dir).Close(ctx)
		timed[1] = time.Since(t0)
		b.Logf("plain: the base backup unpacked in %s, the segments replayed in %s", unpacked.Round(time.Millisecond), (timed[1] - unpacked).Round(time.Millisecond))
		b.ReportMetric(timed[1].Seconds(), "restore-s")
		if timed[0] > 0 {
			b.Logf("restore throughput, Datafleet / plain: %.2f", timed[1].Seconds()/timed[0].Seconds())
		}
	})

	b.Run("archiver", func(b *testing.B) {
		execSQLIn(b, e, "bench", "VACUUM t") // not during the load
		off := &Engine{Config: newConfig(b)}
		start(b, off)
		for _, s := range []struct {
			name string
			e    *Engine
		}{{"off", off}, {"on", e}} {
			took, latency, cpu, wal := writeLoad(b, s.e)
			b.Logf("archiving %s: 128 MiB of inserts in %s, small commits %s on average meanwhile, %d MiB of WAL, archiver CPU %.2f s",
				s.name, took.Round(time.Millisecond), latency.Round(time.Microsecond), wal>>20, cpu)
			b.ReportMetric(took.Seconds(), "load-s-archiving-"+s.name)
			b.ReportMetric(float64(latency.Microseconds()), "commit-us-archiving-"+s.name)
			if s.name == "on" {
				b.ReportMetric(cpu/(float64(wal)/(1<<30)), "archiver-cpu-s/GiB")
				stored, segments := archiveSize(b, srv)
				b.ReportMetric(float64(stored)/float64(segments*WALSegmentSize), "stored/segment")
			}
		}
	})

	b.Run("rpo", func(b *testing.B) {
		execSQL(b, e, "ALTER SYSTEM SET archive_timeout = '10s'", "SELECT pg_reload_conf()", "CREATE TABLE public.rpo (id serial PRIMARY KEY, payload text)")
		steady := func(n int, write bool) []time.Duration {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if write {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := dbaConnect(ctx, e, "postgres")
					if err != nil {
						return
					}
					defer conn.Close(ctx)
					for {
						select {
						case <-stop:
							return
						default:
						}
						// Several MB/s of WAL (rows of random hex, which TOAST does not compress):
						// a segment fills within a few seconds.
						_, _ = conn.Exec(ctx, "INSERT INTO public.rpo (payload) SELECT md5(random()::text) || md5(random()::text) || "+
							"md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) FROM generate_series(1, 3000)")
						time.Sleep(100 * time.Millisecond)
					}
				}()
			}
			var out []time.Duration
			from, t0 := query(b, e, "SELECT pg_current_wal_lsn()::text"), time.Now()
			defer func() {
				rate, _ := strconv.ParseFloat(query(b, e, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '"+from+"')::text"), 64)
				b.Logf("the log advanced by %.1f MB/s meanwhile (a switch on archive_timeout skips to the next segment)", rate/time.Since(t0).Seconds()/1e6)
			}()
			for range n {
				committed := time.Now()
				seg := query(b, e, "WITH m AS (INSERT INTO public.rpo (payload) VALUES ('marker') RETURNING 1) SELECT pg_walfile_name(pg_current_wal_lsn()) FROM m")
				waitArchived(b, srv, seg)
				out = append(out, time.Since(committed))
			}
			close(stop)
			wg.Wait()
			slices.Sort(out)
			return out
		}
		for _, c := range []struct {
			name  string
			write bool
		}{{"steady-writes", true}, {"quiet", false}} {
			d := steady(5, c.write)
			b.Logf("RPO %s: median %s, max %s (5 markers)", c.name, d[len(d)/2].Round(10*time.Millisecond), d[len(d)-1].Round(10*time.Millisecond))
			b.ReportMetric(d[len(d)/2].Seconds(), "rpo-median-s-"+c.name)
			b.ReportMetric(d[len(d)-1].Seconds(), "rpo-max-s-"+c.name)
		}
	})
}

// waitArchived waits for the segment named last to be in the archive and returns the archive's
// segments up to it.
func waitArchived(b testing.TB, srv *archiving, last string) []string {
	var names []string
	deadline := time.Now().Add(5 * time.Minute)
	for {
		all, err := srv.archive.List(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		names = names[:0]
		for _, n := range all {
			if len(n) == 24 && n <= last {
				names = append(names, n)
			}
		}
		if slices.Contains(all, last) {
			return names
		}
		if time.Now().After(deadline) {
			b.Fatalf("segment %s not archived after 5 minutes", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeLoad inserts 128 MiB into a new table of e while a second session commits small
// transactions, and returns the load's time, the small commits' mean latency, the archiver's CPU
// seconds meanwhile (zero without one) and the WAL written.
func writeLoad(b testing.TB, e *Engine) (took, latency time.Duration, cpu float64, wal int64) {
	ctx := context.Background()
	execSQL(b, e, "DROP TABLE IF EXISTS public.load", "CREATE TABLE public.load (id bigint, payload text)", "CREATE TABLE IF NOT EXISTS public.small (id serial, at timestamptz)")
	before := query(b, e, "SELECT pg_current_wal_lsn()::text")
	cpu0 := archiverCPU(b, e)
	var done atomic.Bool
	var commits int64
	var spent time.Duration
	probe := make(chan struct{})
	go func() {
		defer close(probe)
		conn, err := dbaConnect(ctx, e, "postgres")
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		for !done.Load() {
			t0 := time.Now()
			if _, err := conn.Exec(ctx, "INSERT INTO public.small (at) VALUES (now())"); err != nil {
				return
			}
			spent += time.Since(t0)
			commits++
		}
	}()
	t0 := time.Now()
	for i := range 8 { // 16 MiB a statement: the archiver works while the load goes on
		execSQL(b, e, fmt.Sprintf("INSERT INTO public.load SELECT g, repeat(md5(g::text), 2) || md5((g * 7)::text) FROM generate_series(%d, %d) g", i*100000, i*100000+99999))
	}
	took = time.Since(t0)
	done.Store(true)
	<-probe
	last := query(b, e, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	wal, _ = strconv.ParseInt(query(b, e, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '"+before+"')::bigint::text"), 10, 64)
	if e.Config.ArchiveConfig != "" {
		query(b, e, "SELECT pg_switch_wal()::text")
		waitArchiverPast(b, e, last)
	}
	if commits > 0 {
		latency = spent / time.Duration(commits)
	}
	return took, latency, archiverCPU(b, e) - cpu0, wal
}

// waitArchiverPast waits for the server's archiver to have archived segment last (pg_stat_archiver).
func waitArchiverPast(b testing.TB, e *Engine, last string) {
	deadline := time.Now().Add(5 * time.Minute)
	for query(b, e, "SELECT (coalesce(last_archived_wal, '') >= '"+last+"')::text FROM pg_stat_archiver") != "true" {
		if time.Now().After(deadline) {
			b.Fatalf("%s not archived after 5 minutes", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// archiverCPU is the CPU seconds of e's archiver process and of the commands it ran (reaped
// children), from /proc; 0 without an archiver.
func archiverCPU(b testing.TB, e *Engine) float64 {
	pid := query(b, e, "SELECT coalesce((SELECT pid::text FROM pg_stat_activity WHERE backend_type = 'archiver'), '')")
	if pid == "" {
		return 0
	}
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime (fields 14-17)
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// chown gives dir and its files to the server's user, who reads them in restore_command.
func chown(b testing.TB, e *Engine, dir string) {
	if e.Config.Credential == nil {
		return
	}
	uid, gid := int(e.Config.Credential.Uid), int(e.Config.Credential.Gid)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// noArchiving keeps a recovered server from archiving once promoted: two recoveries of one backup
// would archive different segments under the same names of the new timeline.
func noArchiving(b testing.TB, dataDir string) {
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("archive_mode = 'off'\n")
		f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
}

// archiveSize is the bytes the archive's segments take in the store, and how many there are.
func archiveSize(b testing.TB, srv *archiving) (stored int64, segments int64) {
	it := srv.archive.Store.Bucket.List(&blob.ListOptions{Prefix: srv.archive.Store.Key(srv.archive.Dir) + "/"})
	for {
		o, err := it.Next(context.Background())
		if err == io.EOF {
			return stored, segments
		}
		if err != nil {
			b.Fatal(err)
		}
		if name, _, _ := strings.Cut(path.Base(o.Key), "."); len(name) == 24 {
			stored += o.Size
			segments++
		}
	}
}
