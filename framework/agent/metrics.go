package agent

import (
	"context"

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
	// FlagMetricsAddress turns the endpoint on, and EnvMetricsAddress when the flag is not given:
	// pods set the variable, not the flag, because an agent replaced in place by an older release
	// (an operator rollback) keeps the container's arguments, and an older agent refuses a flag it
	// does not know, while it ignores a variable. Off by default, so that agents run side by side
	// on one machine (tests) do not compete for the port.
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
