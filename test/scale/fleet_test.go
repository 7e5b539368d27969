package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAFleetOfEveryEngineSettles is the harness's smoke check in `make test`: a few instances of
// every engine on the kwok control plane become Ready, and once settled the operator writes
// nothing but leases. No timing is asserted (the machine is shared); BenchmarkFleet measures.
func TestAFleetOfEveryEngineSettles(t *testing.T) {
	f := startFleet(t, []string{"postgres", "rabbitmq", "mongodb"}, 4)
	f.create(t, 12, 1)
	took := f.waitReady(t, 10*time.Minute)
	w, _ := f.writes(t)
	t.Logf("12 instances Ready in %s; the operator's writes: %d (%s)", took.Round(time.Millisecond), w.All, w.summary())
	// Settled: long enough for MongoDB's settled poll (30 s) and several PostgreSQL lease checks;
	// RabbitMQ's (a minute) writes nothing either way.
	time.Sleep(35 * time.Second)
	if w, _ := f.writes(t); w.All-w.Leases != 0 {
		t.Errorf("a settled fleet's operator wrote %d times (not leases): %s", w.All-w.Leases, w.summary())
	}
}

// BenchmarkFleet measures one fleet: SCALE_ENGINES (comma-separated, default rabbitmq),
// SCALE_INSTANCES (default 100), SCALE_WORKERS per engine (default 4), SCALE_READY_TIMEOUT (default
// 30m), SCALE_SETTLED (how long
// the settled fleet is watched, default 2m); SCALE_PROFILE, a directory: the operator's heap
// profile, settled, and its CPU profile over the settled fleet's first minute go there;
// SCALE_OPERATOR_GOMEMLIMIT, the operator's GOMEMLIMIT (as a container's memory limit sets it).
// `make bench-scale`.
func BenchmarkFleet(b *testing.B) {
	engines := strings.Split(envOr("SCALE_ENGINES", "rabbitmq"), ",")
	n, _ := strconv.Atoi(envOr("SCALE_INSTANCES", "100"))
	workers, _ := strconv.Atoi(envOr("SCALE_WORKERS", "4"))
	settle, _ := time.ParseDuration(envOr("SCALE_SETTLED", "2m"))
	for range b.N {
		f := startFleet(b, engines, workers)
		f.measureBaseline(b)
		f.create(b, n, 1)
		readyTimeout, _ := time.ParseDuration(envOr("SCALE_READY_TIMEOUT", "30m"))
		took := f.waitReady(b, readyTimeout)
		converging, _ := f.writes(b)
		u := f.usage(b)
		leases := f.leaseCalls(b)
		profiles := os.Getenv("SCALE_PROFILE")
		name := fmt.Sprintf("%s-%d", strings.Join(engines, "+"), n)
		if profiles != "" {
			// The CPU of the settled fleet, over its first minute (in the settle window's time).
			if err := f.op.saveProfile("profile?seconds=60", filepath.Join(profiles, "cpu-settled-"+name+".pprof")); err != nil {
				b.Error(err)
			}
			time.Sleep(settle - time.Minute)
		} else {
			time.Sleep(settle)
		}
		settled, _ := f.writes(b)
		u2 := f.usage(b)
		leases2 := f.leaseCalls(b)
		heap := f.heap(b)
		if profiles != "" {
			if err := f.op.saveProfile("heap?gc=1", filepath.Join(profiles, "heap-"+name+".pprof")); err != nil {
				b.Error(err)
			}
		}
		q0 := f.queueing(b)
		reactions := f.react(b, 100)
		qa := f.queueing(b)
		// Again while a tenth of the fleet's number is being created and deleted.
		ctx, stop := context.WithCancel(context.Background())
		churning := f.churn(b, ctx, max(1, n/10), 1)
		time.Sleep(30 * time.Second)
		q1 := f.queueing(b)
		churned := f.react(b, 100)
		q2 := f.queueing(b)
		stop()
		b.Logf("work queues while the settled fleet reacted: %s", qa.since(q0))
		b.Logf("work queues while it reacted with churn: %s", q2.since(q1))
		churning.Wait()
		perInstance := func(v float64) float64 { return v / float64(n) }
		cpuPerHour := (u2.CPU - u.CPU).Seconds() / settle.Hours()
		b.ReportMetric(took.Seconds(), "s-to-ready")
		b.ReportMetric(perInstance(u2.RSS-f.baseline.RSS)/1024, "KiB-RSS/instance")
		b.ReportMetric(perInstance(heap-f.baselineHeap)/1024, "KiB-heap/instance")
		b.ReportMetric(perInstance(float64(converging.All)), "writes/instance")
		b.ReportMetric(float64(settled.All-settled.Leases)/settle.Minutes(), "settled-writes/min")
		b.ReportMetric(perInstance(cpuPerHour), "CPU-s/instance/h")
		b.ReportMetric(percentile(reactions, 0.5).Seconds()*1000, "ms-react-p50")
		b.ReportMetric(percentile(reactions, 0.99).Seconds()*1000, "ms-react-p99")
		b.ReportMetric(percentile(churned, 0.5).Seconds()*1000, "ms-react-churn-p50")
		b.ReportMetric(percentile(churned, 0.99).Seconds()*1000, "ms-react-churn-p99")
		b.Logf("| %s | %d | %.1f s | %.1f MiB (%.1f at 0) | %.0f KiB | %.0f KiB | %.1f (%.2f conflicts) | %.1f | %.2f | %d / %d ms | %d / %d ms |",
			strings.Join(engines, "+"), n, took.Seconds(), u2.RSS/(1<<20), f.baseline.RSS/(1<<20),
			perInstance(u2.RSS-f.baseline.RSS)/1024, perInstance(heap-f.baselineHeap)/1024,
			perInstance(float64(converging.All)), perInstance(float64(converging.Conflicts)),
			float64(settled.All-settled.Leases)/settle.Minutes(), perInstance(cpuPerHour),
			percentile(reactions, 0.5).Milliseconds(), percentile(reactions, 0.99).Milliseconds(),
			percentile(churned, 0.5).Milliseconds(), percentile(churned, 0.99).Milliseconds())
		b.Logf("converging writes: %s; settled: %s, %d lease writes", converging.summary(), settled.summary(), settled.Leases)
		b.Logf("Lease requests the API server answered while settled (the PostgreSQL agents'): %.1f reads and %.1f writes a second",
			(leases2.reads-leases.reads)/settle.Seconds(), (leases2.writes-leases.writes)/settle.Seconds())
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
