package agentruntime_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
)

// relaying is an engine whose server exports figures of its own at url.
type relaying struct {
	engine
	url string
}

func (e *relaying) RelayURL() string { return e.url }

// exporterAt serves body as an engine's own Prometheus endpoint on loopback.
func exporterAt(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// An engine's own exporter is served through the agent's endpoint (TLS and the scrape token),
// beside the agent's figures; an exporter that does not answer, answers too much, or is not on
// loopback is left out and datafleet_member_exporter_up says so, while the agent's own figures
// are still served.
func TestTheEnginesExporterIsRelayed(t *testing.T) {
	inst := agenttest.New(t)
	inst.ScrapeToken(t, "the-token")
	ctx := context.Background()
	const served = "# HELP rabbitmq_queues Queues.\n# TYPE rabbitmq_queues gauge\nrabbitmq_queues 7\n"
	huge := served + strings.Repeat("\n", 17<<20) // valid wherever it is cut
	for _, c := range []struct {
		name, url string
		up        float64
	}{
		{"answering", exporterAt(t, served), 1},
		{"stopped", "http://127.0.0.1:1/metrics", 0},
		{"too much", exporterAt(t, huge), 0},
		{"not loopback", strings.Replace(exporterAt(t, served), "127.0.0.1", "localhost", 1), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := serveMetrics(t, &relaying{url: c.url}, inst.Dir)
			m, err := inst.Scrape(ctx, addr, "the-token")
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := m.Value("datafleet_member_exporter_up"); !ok || v != c.up {
				t.Fatalf("datafleet_member_exporter_up = %v (%v), want %v; served:\n%s", v, ok, c.up, m)
			}
			if v, ok := m.Value("rabbitmq_queues"); (c.up == 1) != (ok && v == 7) {
				t.Fatalf("rabbitmq_queues = %v (%v) with the exporter up = %v; served:\n%s", v, ok, c.up, m)
			}
			if _, ok := m.Value("datafleet_member_ready"); !ok {
				t.Fatalf("the agent's own figures are missing; served:\n%s", m)
			}
		})
	}
}
