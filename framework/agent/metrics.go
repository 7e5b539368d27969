package agent

import (
	"context"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// The agent's metrics endpoint: Prometheus's text format at PathMetrics on its own port, over TLS
// with the agent's certificate, to a scraper that presents the fleet's scrape token as a bearer
// token. The agent never holds the token itself, only its sha256 (hex), which the operator writes
// as MetricsTokenKey into the agents' TLS Secret: a tenant who reads that Secret learns nothing
// that scrapes another instance. docs/observability.md lists every metric.
const (
	PathMetrics     = "/metrics"
	MetricsPort     = 9187 // the port PostgreSQL exporters use by convention
	MetricsTokenKey = "metrics-token.sha256"
	// FlagMetricsAddress says where the endpoint listens, else EnvMetricsAddress when it is set
	// (empty: no endpoint), else MetricsPort on every address. On by default and set by nothing
	// in the pod template: an agent upgraded in place brings it to a running pod, a pod template
	// unchanged restarts nothing, and an agent rolled back in place to a release without it simply
	// has none. Tests that run agents side by side on one machine turn it off or move it.
	FlagMetricsAddress = "metrics-address"
	EnvMetricsAddress  = "DATAFLEET_METRICS_ADDRESS"
)

// Exporter is implemented by engines whose agent exports the engine's own figures beside the
// ones every agent exports (agentruntime/metrics.go). Export sends const metrics on ch (see
// prometheus.MustNewConstMetric); it is called once per scrape with a deadline, and a figure the
// engine cannot read is left out, never invented.
type Exporter interface {
	Export(ctx context.Context, ch chan<- prometheus.Metric)
}

// DataVolume is implemented by engines whose agent knows where the engine keeps its data: the
// metrics report how full the filesystem holding it is (datafleet_member_volume_*), the figure
// behind the "storage almost full" alert.
type DataVolume interface {
	DataDir() string
}

// DefaultMetricsAddress is where the metrics endpoint listens when no flag says (see
// FlagMetricsAddress).
func DefaultMetricsAddress() string {
	if v, ok := os.LookupEnv(EnvMetricsAddress); ok {
		return v
	}
	return fmt.Sprintf(":%d", MetricsPort)
}

// Relayer is implemented by engines whose server exports Prometheus figures of its own (RabbitMQ's
// rabbitmq_prometheus plugin) on a listener only the pod reaches. RelayURL is that endpoint, plain
// HTTP on loopback, or "" when the running server has none (started by an operator that did not
// enable it). The agent serves those figures on its own endpoint beside its own: one target per
// pod, behind TLS and the scrape token, read under the scrape's deadline and bounded in size.
type Relayer interface {
	RelayURL() string
}
