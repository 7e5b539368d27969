package agentruntime

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// maxRelayBytes bounds what the agent reads from the engine's own exporter. RabbitMQ's aggregated
// endpoint is a few hundred KiB at most (per-object figures are off); a server that sends more is
// broken or not the server, and its figures are left out rather than held in memory.
const maxRelayBytes = 16 << 20

var descRelayUp = prometheus.NewDesc("datafleet_member_exporter_up",
	"1 when the engine's own exporter answered the agent (its figures are served beside the agent's), else 0.", nil, nil)

// relayed reads the engine's own exporter (agent.Relayer) under ctx: its metric families, or why
// there are none. Loopback only: the URL is the engine's, not anything a tenant writes, and is
// checked again here so that no relay ever leaves the pod.
func relayed(ctx context.Context, rawURL string) ([]*dto.MetricFamily, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		return nil, fmt.Errorf("relay %q: only http://127.0.0.1 is relayed", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("relay: %s answered %s", u.Redacted(), resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bounded.Reader(resp.Body, maxRelayBytes))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return slices.Collect(maps.Values(fams)), nil
}

// relayGatherer adds the relayed families to a scrape (prometheus.Gatherers merges and checks
// them against the agent's own: a name both export is an error the scrape reports).
type relayGatherer []*dto.MetricFamily

func (g relayGatherer) Gather() ([]*dto.MetricFamily, error) { return g, nil }

// relay is the scrape's relayed part for e, and the collector saying whether it answered;
// nothing for engines without an exporter of their own.
func relay(ctx context.Context, e agent.Engine) (prometheus.Gatherer, prometheus.Collector) {
	r, ok := e.(agent.Relayer)
	if !ok {
		return relayGatherer(nil), nil
	}
	target := r.RelayURL()
	if target == "" {
		return relayGatherer(nil), nil
	}
	fams, err := relayed(ctx, target)
	up := 1.0
	if err != nil {
		up = 0
	}
	return relayGatherer(fams), constCollector{prometheus.MustNewConstMetric(descRelayUp, prometheus.GaugeValue, up)}
}

// constCollector collects fixed metrics; unchecked, like memberCollector.
type constCollector []prometheus.Metric

func (constCollector) Describe(chan<- *prometheus.Desc) {}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}
