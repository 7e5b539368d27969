package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// BenchmarkBackup backs up databases of 128 MiB and of DATAFLEET_BENCH_MB (default 1024) MiB
// through the agent's stream into a local (file://) store, the whole backup path of a Job, and
// runs a plain `pg_dump -Fc` of the large one to a file in the same run. It reports throughput
// against the database's size and the peak memory of each path: the Go side's live heap above
// what it held before, and pg_dump's peak resident set. `make bench-backup` runs it.
func BenchmarkBackup(b *testing.B) {
	large := 1024
	if v := os.Getenv("DATAFLEET_BENCH_MB"); v != "" {
		large, _ = strconv.Atoi(v)
	}
	e, r := startWithReplication(b)
	ctx := context.Background()
	sizes := map[string]int64{}
	for _, mb := range []int{128, large} {
		db := fmt.Sprintf("bench%d", mb)
		sizes[db] = fillDatabase(b, e, db, mb)
	}
	dir := b.TempDir()
	s, err := store.Open(ctx, "file://"+dir, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	// Only one database exists at a time for the agent's dump: it dumps every database.
	for _, mb := range []int{128, large} {
		db := fmt.Sprintf("bench%d", mb)
		for other := range sizes {
			allow := other == db
			execSQL(b, e, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %v", other, allow))
		}
		b.Run(fmt.Sprintf("db=%dMiB/datafleet", mb), func(b *testing.B) {
			b.SetBytes(sizes[db])
			peak := watchMemory()
			for i := 0; i < b.N; i++ {
				m, err := backup.Write(ctx, s, fmt.Sprintf("b%d-%d", mb, i), backup.Manifest{Engine: "postgres"}, nil,
					func(ctx context.Context, w io.Writer) error { return r.agent().Dump(ctx, w) })
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.Size)/float64(sizes[db]), "stored/db")
			}
			heap, rss := peak()
			b.ReportMetric(float64(heap)/(1<<20), "go-heap-peak-MiB")
			b.ReportMetric(float64(rss)/(1<<20), "pg_dump-rss-peak-MiB")
		})
		if mb != large {
			continue
		}
		plain := filepath.Join(filepath.Dir(e.Config.DataDir), "plain") // pg_dump runs as the postgres user: a directory it owns
		if err := e.mkdir(plain); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("db=%dMiB/pg_dump-Fc", mb), func(b *testing.B) {
			b.SetBytes(sizes[db])
			peak := watchMemory()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(plain, fmt.Sprintf("%d.dump", i))
				cmd := e.command(ctx, "pg_dump", "--format=custom", "--file", out, "--dbname", e.connString(db))
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, o)
				}
				st, _ := os.Stat(out)
				b.ReportMetric(float64(st.Size())/float64(sizes[db]), "stored/db")
			}
			heap, rss := peak()
			b.ReportMetric(float64(heap)/(1<<20), "go-heap-peak-MiB")
			b.ReportMetric(float64(rss)/(1<<20), "pg_dump-rss-peak-MiB")
		})
	}
}

// fillDatabase creates a database of about mb MiB (one table of rows with 128 hex characters of
// md5 output: compressible about as much as real data) and returns its size in bytes.
func fillDatabase(b *testing.B, e *Engine, db string, mb int) int64 {
	b.Helper()
	execSQL(b, e, "CREATE DATABASE "+db)
	rows := int64(mb) << 20 / 200
	conn, err := dbaConnect(context.Background(), e, db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	for _, sql := range []string{
		"CREATE TABLE t (id bigint PRIMARY KEY, payload text)",
		fmt.Sprintf("INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 31)::text) FROM generate_series(1, %d) g", rows),
		"VACUUM ANALYZE t",
	} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
	var size int64
	if err := conn.QueryRow(context.Background(), "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d rows, %d MiB, filled in %s", db, rows, size>>20, time.Since(start).Round(time.Second))
	return size
}

// watchMemory samples, until the returned function is called, the Go heap's live objects above
// their level at the start, and the peak resident set (VmHWM) of any pg_dump process.
func watchMemory() func() (heap, pgDumpRSS uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peakHeap, peakRSS uint64
	var mu sync.Mutex
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			h, r := read(), pgDumpHWM()
			mu.Lock()
			if h > base && h-base > peakHeap {
				peakHeap = h - base
			}
			peakRSS = max(peakRSS, r)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return peakHeap, peakRSS
	}
}

func pgDumpHWM() uint64 {
	entries, _ := os.ReadDir("/proc")
	var peak uint64
	for _, d := range entries {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "pg_dump" {
			continue
		}
		status, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				peak = max(peak, kb<<10)
			}
		}
	}
	return peak
}
