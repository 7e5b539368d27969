package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/bounded"
	"github.com/datafleet-dev/datafleet/framework/certs"
)

// The broker's own figures come from its rabbitmq_prometheus plugin, which the engine enables on
// loopback only (prometheus.tcp.ip = 127.0.0.1): the agent relays them (fwagent.Relayer), so they
// are scraped with TLS and the scrape token like every other figure. The agent adds what the
// plugin lacks, read from the management API on loopback as the operator's administrator: the
// cluster's nodes as this node sees them, and whether stopping this node now would leave a quorum
// queue without a majority (the check every rolling restart waits on).

var (
	_ fwagent.Relayer  = (*Engine)(nil)
	_ fwagent.Exporter = (*Engine)(nil)
)

func rabbitDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("datafleet_rabbitmq_"+name, help, labels, nil)
}

var (
	rabbitUp             = rabbitDesc("up", "1 when the management API answered the agent as the operator's administrator, else 0 (and the other datafleet_rabbitmq_ figures are absent).")
	rabbitClusterNodes   = rabbitDesc("cluster_nodes", "Nodes of the cluster as this node sees them, by state (running, stopped).", "state")
	rabbitQuorumCritical = rabbitDesc("quorum_critical", "1 when stopping this node now would leave a quorum queue without a majority of its members online, else 0.")
)

// maxManagementAnswer bounds what the agent reads from one management API answer.
const maxManagementAnswer = 4 << 20

// startedSettings are the rabbitmq.conf settings the node was started with: the file Bootstrap
// assembled, not the ConfigMap, which may have changed since (a node reads its settings at start).
func (e *Engine) startedSettings() map[string]string {
	f, err := os.Open(e.configPath())
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// RelayURL implements fwagent.Relayer: the plugin's endpoint, when the node was started with it.
func (e *Engine) RelayURL() string {
	s := e.startedSettings()
	if s["prometheus.tcp.ip"] != "127.0.0.1" || s["prometheus.tcp.port"] == "" {
		return "" // a node an earlier operator started, without the plugin: until its next restart
	}
	return "http://" + net.JoinHostPort("127.0.0.1", s["prometheus.tcp.port"]) + "/metrics"
}

// Export implements fwagent.Exporter.
func (e *Engine) Export(ctx context.Context, ch chan<- prometheus.Metric) {
	var nodes []struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
	}
	m, err := e.loopbackManagement()
	if err == nil {
		_, err = m.get(ctx, "/api/nodes?columns=name,running", &nodes)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(rabbitUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(rabbitUp, prometheus.GaugeValue, 1)
	running := 0
	for _, n := range nodes {
		if n.Running {
			running++
		}
	}
	ch <- prometheus.MustNewConstMetric(rabbitClusterNodes, prometheus.GaugeValue, float64(running), "running")
	ch <- prometheus.MustNewConstMetric(rabbitClusterNodes, prometheus.GaugeValue, float64(len(nodes)-running), "stopped")
	// 200: the node may stop; 503: it is quorum-critical (the answer names the queues).
	switch code, err := m.get(ctx, "/api/health/checks/node-is-quorum-critical", nil); {
	case err == nil && code == http.StatusOK:
		ch <- prometheus.MustNewConstMetric(rabbitQuorumCritical, prometheus.GaugeValue, 0)
	case err == nil && code == http.StatusServiceUnavailable:
		ch <- prometheus.MustNewConstMetric(rabbitQuorumCritical, prometheus.GaugeValue, 1)
	}
}

// loopbackClient is this node's management API on loopback, as the operator's administrator.
type loopbackClient struct {
	base, user, password string
	client               *http.Client
}

// loopbackManagement reaches the management listener the node was started with: plain HTTP, else
// HTTPS when TLS is required (verified against the instance's CA). One per scrape: the settings,
// the password and the certificates are read once for its calls.
func (e *Engine) loopbackManagement() (*loopbackClient, error) {
	s := e.startedSettings()
	scheme, port, cfg := "http", s["management.tcp.port"], (*tls.Config)(nil)
	if port == "" {
		scheme, port = "https", s["management.ssl.port"]
		var err error
		if cfg, err = e.loopbackTLS(); err != nil {
			return nil, err
		}
	}
	if port == "" {
		return nil, fmt.Errorf("the node was started without a management listener")
	}
	password, err := e.adminPassword()
	if err != nil {
		return nil, err
	}
	return &loopbackClient{base: scheme + "://" + net.JoinHostPort("127.0.0.1", port), user: e.Config.User, password: password,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}}, nil
}

// get reads path, decoding a 200 answer into out (when not nil), and returns the status code.
func (m *loopbackClient) get(ctx context.Context, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(m.user, m.password)
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := bounded.ReadAll(resp.Body, maxManagementAnswer)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		return resp.StatusCode, json.Unmarshal(body, out)
	}
	return resp.StatusCode, nil
}

// loopbackTLS verifies the node's certificate against the instance's CA under the first name the
// certificate carries (the node is reached at 127.0.0.1, which is not among them).
func (e *Engine) loopbackTLS() (*tls.Config, error) {
	if e.Config.TLSDir == "" {
		return nil, fmt.Errorf("no TLS directory for the management API's TLS listener")
	}
	caPEM, err := os.ReadFile(filepath.Join(e.Config.TLSDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in ca.crt")
	}
	certPEM, err := os.ReadFile(filepath.Join(e.Config.TLSDir, "tls.crt"))
	if err != nil {
		return nil, err
	}
	leaf, err := certs.ParseCertificate(certPEM)
	if err != nil || len(leaf.DNSNames) == 0 {
		return nil, fmt.Errorf("the node's certificate names no host")
	}
	name := leaf.DNSNames[0]
	if strings.HasPrefix(name, "*.") {
		name = "node" + name[1:] // any name the wildcard covers
	}
	return &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}
