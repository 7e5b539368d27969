package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/bounded"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/operator"
)

// The lag and connections come from each pod's agent, the way the fleet's Prometheus reads them
// (docs/observability.md): its metrics endpoint, HTTPS verified against the instance's CA, with the
// fleet's scrape token. The plugin reaches the pod through the API server (a port-forward, as
// `kubectl port-forward` does), so it needs what that needs: get on the scrape token's Secret,
// get on the instance's agent Secret (for its CA), and create on pods/portforward. Without them
// the figures are missing and the output says why; everything else still prints.

// PodFigures are a pod's figures, printed; "" when its agent does not give them.
type PodFigures struct {
	Lag, Connections string
	// Restarts are the engine's restarts by its agent, in the container (the pod's restart count
	// does not show them): a primary that stepped down or fenced.
	Restarts string
}

// families are one scrape's metric families by name.
type families map[string]*dto.MetricFamily

// sum adds the values of name's series whose labels include want (name=value pairs).
func (f families) sum(name string, want ...string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	var total float64
	var found bool
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total, found
}

// applyFigures fills each pod's figures from what the instance's agents served (by pod name).
// Lag is the replica's, as its primary measures it (PostgreSQL: bytes not replayed and time;
// MongoDB: time behind the primary); RabbitMQ's nodes have none.
func applyFigures(s *InstanceStatus, scraped map[string]families) {
	number := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for i := range s.Pods {
		p := &s.Pods[i]
		own := scraped[p.Name]
		if v, ok := own.sum("datafleet_agent_engine_restarts_total"); ok {
			p.Figures.Restarts = number(v)
		}
		switch s.Engine {
		case "postgres":
			if v, ok := own.sum("datafleet_postgres_connections"); ok {
				p.Figures.Connections = number(v)
			}
			primary := scraped[s.Primary]
			if b, ok := primary.sum("datafleet_postgres_replication_lag_bytes", "replica="+p.Name); ok && p.Name != s.Primary {
				secs, _ := primary.sum("datafleet_postgres_replication_lag_seconds", "replica="+p.Name)
				p.Figures.Lag = fmt.Sprintf("%s B, %.3fs", number(b), secs)
			}
		case "mongodb":
			if v, ok := own.sum("datafleet_mongodb_connections", "state=current"); ok {
				p.Figures.Connections = number(v)
			}
			for _, f := range scraped {
				for _, m := range f["datafleet_mongodb_replication_lag_seconds"].GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "member" && strings.HasPrefix(l.GetValue(), p.Name+".") {
							p.Figures.Lag = number(m.GetGauge().GetValue()) + "s"
						}
					}
				}
			}
		case "rabbitmq":
			if v, ok := own.sum("rabbitmq_connections"); ok {
				p.Figures.Connections = number(v)
			}
		}
	}
}

// scraper reads the agents' figures through port-forwards.
type scraper struct {
	cfg   *rest.Config
	pods  kubernetes.Interface
	c     client.Reader
	token string
}

// newScraper reads the scrape token from its Secret (namespace/name).
func newScraper(ctx context.Context, cfg *rest.Config, c client.Reader, secret string) (*scraper, error) {
	ns, name, ok := strings.Cut(secret, "/")
	if !ok {
		return nil, fmt.Errorf("--scrape-token-secret %q: want NAMESPACE/NAME", secret)
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return nil, fmt.Errorf("reading the scrape token (Secret %s): %w", secret, err)
	}
	token := strings.TrimSpace(string(s.Data[operator.ScrapeTokenKey]))
	if token == "" {
		return nil, fmt.Errorf("the Secret %s holds no %q", secret, operator.ScrapeTokenKey)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &scraper{cfg: cfg, pods: cs, c: c, token: token}, nil
}

// scrapeTimeout bounds one pod's port-forward and scrape.
const scrapeTimeout = 15 * time.Second

// instance scrapes every pod of s, and says why when it could not.
func (sc *scraper) instance(ctx context.Context, s *InstanceStatus) (map[string]families, error) {
	agentTLS := &corev1.Secret{}
	if err := sc.c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: certs.AgentSecretName(s.Name)}, agentTLS); err != nil {
		return nil, fmt.Errorf("reading the agents' CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(agentTLS.Data[certs.CAKey]) {
		return nil, errors.New("the agents' Secret holds no CA")
	}
	tlsConfig := &tls.Config{RootCAs: pool, ServerName: fwagent.ServerName, MinVersion: tls.VersionTLS12}
	out := map[string]families{}
	var errs []error
	for _, p := range s.Pods {
		f, err := sc.pod(ctx, s.Namespace, p.Name, tlsConfig)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
			continue
		}
		out[p.Name] = f
	}
	return out, errors.Join(errs...)
}

// pod forwards a local port to the pod's metrics port and scrapes it.
func (sc *scraper) pod(ctx context.Context, namespace, name string, tlsConfig *tls.Config) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	local, stop, err := forward(ctx, sc.cfg, sc.pods, namespace, name, fwagent.MetricsPort)
	if err != nil {
		return nil, err
	}
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", local, fwagent.PathMetrics), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+sc.token)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the agent answered %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	f, err := parser.TextToMetricFamilies(bounded.Reader(resp.Body, 16<<20))
	return families(f), err
}

// runStatus prints the status of the instances, with their agents' figures unless noFigures.
func runStatus(ctx context.Context, out io.Writer, cfg *rest.Config, c client.Reader, namespace, name string, noFigures bool, tokenSecret string) error {
	now := time.Now()
	rows, err := Status(ctx, c, namespace, name, now)
	if err != nil {
		return err
	}
	if !noFigures {
		sc, err := newScraper(ctx, cfg, c, tokenSecret)
		for i := range rows {
			var scraped map[string]families
			if err == nil {
				var serr error
				scraped, serr = sc.instance(ctx, &rows[i])
				if serr != nil {
					rows[i].FiguresNote = serr.Error()
				}
			} else {
				rows[i].FiguresNote = err.Error()
			}
			applyFigures(&rows[i], scraped)
		}
	}
	return PrintStatus(out, rows, now)
}
