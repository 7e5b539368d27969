package agentruntime_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
)

// exporting is an engine with a figure of its own, keeping its data in dir.
type exporting struct {
	engine
	dir string
}

func (e *exporting) DataDir() string { return e.dir }

var descConnections = prometheus.NewDesc("test_connections", "Connections.", []string{"state"}, nil)

func (e *exporting) Export(_ context.Context, ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, 3, "active")
}

// serveMetrics runs the agent's metrics handler behind its real listener configuration.
func serveMetrics(t *testing.T, e fwagent.Engine, dir string) string {
	t.Helper()
	cfg, err := agentruntime.ServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(agentruntime.MetricsHandler(e, dir))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://")
}

// The metrics endpoint answers only over TLS and only to the scrape token, which the agent knows
// only by its sha256; an agent given no token answers nobody. What it serves is every agent's
// figures (readiness, role, the binary, the agent's own process) and the engine's.
func TestTheMetricsNeedTheScrapeToken(t *testing.T) {
	inst := agenttest.New(t)
	addr := serveMetrics(t, &exporting{dir: t.TempDir()}, inst.Dir)
	ctx := context.Background()

	if _, err := inst.Scrape(ctx, addr, "the-token"); !errors.Is(err, agenttest.ErrScrapeRefused) {
		t.Fatalf("an agent without a scrape token served its metrics: %v", err)
	}
	inst.ScrapeToken(t, "the-token")
	for _, token := range []string{"", "another-token", "the-token-and-more", "Bearer the-token"} {
		if _, err := inst.Scrape(ctx, addr, token); !errors.Is(err, agenttest.ErrScrapeRefused) {
			t.Fatalf("token %q was served: %v", token, err)
		}
	}
	if resp, err := http.Get("http://" + addr + fwagent.PathMetrics); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the metrics were served over plain HTTP")
		}
	}

	m, err := inst.Scrape(ctx, addr, "the-token")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"datafleet_member_ready", nil, 1},
		{"datafleet_member_role", []string{"role=primary"}, 1},
		{"test_connections", []string{"state=active"}, 3},
	} {
		if v, ok := m.Value(want.name, want.labels...); !ok || v != want.value {
			t.Errorf("%s%v = %v (present: %v), want %v; served:\n%s", want.name, want.labels, v, ok, want.value, m)
		}
	}
	size, _ := m.Value("datafleet_member_volume_size_bytes")
	if avail, ok := m.Value("datafleet_member_volume_available_bytes"); !ok || avail <= 0 || avail > size {
		t.Errorf("volume: %v available of %v; served:\n%s", avail, size, m)
	}
	if len(m.Series("datafleet_agent_info")) != 1 || len(m.Series("datafleet_agent_process_resident_memory_bytes")) != 1 {
		t.Errorf("no agent info or process figures; served:\n%s", m)
	}
}
