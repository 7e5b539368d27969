package agentruntime

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// scrapeTimeout bounds what one scrape asks the engine: a hung database makes its figures absent,
// not the scrape hang (Prometheus's own default timeout is 10 s).
const scrapeTimeout = 5 * time.Second

// Every agent's own figures, whatever its engine.
var (
	descInfo = prometheus.NewDesc("datafleet_agent_info",
		"The agent binary that runs in the pod: its version and the sha256 of its executable (always 1).",
		[]string{"version", "digest"}, nil)
	descReady = prometheus.NewDesc("datafleet_member_ready",
		"1 when the engine serves clients in its role (what the pod's readiness probe says), else 0.", nil, nil)
	descVolumeSize = prometheus.NewDesc("datafleet_member_volume_size_bytes",
		"Size of the filesystem holding the engine's data (the instance's volume).", nil, nil)
	descVolumeAvailable = prometheus.NewDesc("datafleet_member_volume_available_bytes",
		"Space left to the engine on the filesystem holding its data.", nil, nil)
	descRestarts = prometheus.NewDesc("datafleet_agent_engine_restarts_total",
		"Times the agent stopped the engine and started it again in the same container because its control loop asked (a primary stepping down or fencing); the pod's restart count does not include them.",
		nil, nil)
	descRole = prometheus.NewDesc("datafleet_member_role",
		"The member's role as its engine reports it, for example primary or replica (always 1; absent while the engine cannot say).",
		[]string{"role"}, nil)
)

// MetricsHandler serves the agent's metrics as Run does (on Listen.MetricsAddr, with ServerTLS) to
// a request that carries the scrape token whose sha256 is in tlsDir (agent.MetricsTokenKey).
func MetricsHandler(e agent.Engine, tlsDir string) http.Handler {
	return metricsHandler(e, tlsDir, newUpgrader(e), &life{})
}

func metricsHandler(e agent.Engine, tlsDir string, up *upgrader, lf *life) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agent.PathMetrics, func(w http.ResponseWriter, r *http.Request) {
		if why := scrapeRefused(r, filepath.Join(tlsDir, agent.MetricsTokenKey)); why != "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		// A registry per scrape: the engine's figures are read under this request's deadline.
		ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
		defer cancel()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "datafleet_agent"}),
			&memberCollector{ctx: ctx, e: e, up: up, lf: lf},
		)
		relayed, relayUp := relay(ctx, e)
		if relayUp != nil {
			reg.MustRegister(relayUp)
		}
		promhttp.HandlerFor(prometheus.Gatherers{reg, relayed}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
	})
	return mux
}

// scrapeRefused says why r may not read the metrics, or "" when its bearer token is the scrape
// token. Plain HTTP never reaches here (the listener is TLS only).
func scrapeRefused(r *http.Request, hashFile string) string {
	b, err := os.ReadFile(hashFile)
	want, derr := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || derr != nil || len(want) != sha256.Size {
		return "this agent has no scrape token yet"
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return "the metrics need the fleet's scrape token as a bearer token"
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return "not the scrape token"
	}
	return ""
}

// memberCollector sends the figures every agent has, then the engine's own (agent.Exporter).
type memberCollector struct {
	ctx context.Context
	e   agent.Engine
	up  *upgrader
	lf  *life
}

// Describe sends nothing: the collector is unchecked, since an engine's figures vary with what its
// server can answer.
func (c *memberCollector) Describe(chan<- *prometheus.Desc) {}

func (c *memberCollector) Collect(ch chan<- prometheus.Metric) {
	if info, err := c.up.info(); err == nil {
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, info.Version, info.Digest)
	}
	st := c.e.Status(c.ctx)
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	restarts := 0
	if r := c.lf.status(); r != nil {
		restarts = r.Count
	}
	ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(restarts))
	if st.Role != "" {
		ch <- prometheus.MustNewConstMetric(descRole, prometheus.GaugeValue, 1, st.Role)
	}
	if v, ok := c.e.(agent.DataVolume); ok {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(v.DataDir(), &fs); err == nil {
			ch <- prometheus.MustNewConstMetric(descVolumeSize, prometheus.GaugeValue, float64(fs.Blocks)*float64(fs.Bsize))
			ch <- prometheus.MustNewConstMetric(descVolumeAvailable, prometheus.GaugeValue, float64(fs.Bavail)*float64(fs.Bsize))
		}
	}
	if x, ok := c.e.(agent.Exporter); ok {
		x.Export(c.ctx, ch)
	}
}
