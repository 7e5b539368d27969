package rabbitmq

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/bounded"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// management is a client of one node's management API, as the operator's administrator. Only the
// few calls the operator makes; the API is reachable on the pod network only.
type management struct {
	base           string // http(s)://host:port
	user, password string
	// tls verifies the API's certificate when base is https.
	tls *tls.Config
	// unbounded requests take as long as their context allows (a definitions export or import,
	// bounded by its Job's deadline); otherwise managementTimeout.
	unbounded bool
}

// managementAt is the management API at host, over TLS (verified with tlsConfig) when tlsConfig
// is set, else in clear.
func managementAt(host, password string, tlsConfig *tls.Config) management {
	if tlsConfig != nil {
		return management{base: "https://" + net.JoinHostPort(host, strconv.Itoa(managementTLSPort)), user: AdminUser, password: password, tls: tlsConfig}
	}
	return management{base: "http://" + net.JoinHostPort(host, strconv.Itoa(managementPort)), user: AdminUser, password: password}
}

// managementTLS is how the operator verifies the management API of an instance with
// spec.tls.required, whose nodes serve it over TLS only: against the instance's CA, as the client
// Service's name, which every node's certificate carries (the operator dials pod IPs). Nil when
// TLS is not required: the plain listener serves.
func managementTLS(ctx context.Context, c client.Reader, inst *v1alpha1.ServiceInstance) (*tls.Config, error) {
	if !inst.TLSRequired() {
		return nil, nil
	}
	// The bundle: during a CA rotation a node may still serve a certificate of the other CA.
	trust, err := certs.ReadTrust(ctx, c, inst.Namespace, inst.Name)
	if err != nil {
		return nil, err
	}
	return verifyingTLS(trust.Bundle, names.ServiceHost(workload.ServiceName(inst), inst.Namespace))
}

func verifyingTLS(caPEM []byte, serverName string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the instance's CA holds no certificate")
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}, nil
}

const managementTimeout = 5 * time.Second

var managementClient = &http.Client{Timeout: managementTimeout}

// maxAnswer bounds what the operator reads of one management API answer: listings ask for the
// names alone (columns=name), about 64 bytes a user or vhost, so 32 MiB is half a million of them.
// A larger answer fails that call, named, and never the operator's memory.
const maxAnswer = 32 << 20

// do sends a request, with body as JSON unless nil, and returns the status (0 if there was no
// answer) and the answer (at most maxAnswer).
func (m management) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := m.request(ctx, method, path, rd)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := bounded.ReadAll(resp.Body, maxAnswer)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: the answer: %w", method, path, err)
	}
	return resp.StatusCode, answer, nil
}

// httpClient sends m's requests: with the short timeout unless unbounded, over m.tls if set.
func (m management) httpClient() *http.Client {
	timeout := managementTimeout
	if m.unbounded {
		timeout = 0
	}
	if m.tls == nil {
		if m.unbounded {
			return http.DefaultClient
		}
		return managementClient
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: m.tls, DisableKeepAlives: true,
		TLSHandshakeTimeout: managementTimeout}}
}

// request makes one request as the administrator, a JSON body when rd is not nil.
func (m management) request(ctx context.Context, method, path string, rd io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(m.user, m.password)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return m.httpClient().Do(req)
}

// failed is the error of an unexpected status, with the answer, which says why.
func failed(method, path string, code int, answer []byte) error {
	return fmt.Errorf("%s %s: %d %s: %s", method, path, code, http.StatusText(code), strings.TrimSpace(string(answer)))
}

// get decodes the JSON answer to GET path into out. Statuses other than 200 are returned with
// their body (the health checks answer 503 with a reason).
func (m management) get(ctx context.Context, path string, out any) (int, error) {
	code, body, err := m.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return code, err
	}
	if code != http.StatusOK && code != http.StatusServiceUnavailable {
		return code, failed(http.MethodGet, path, code, body)
	}
	return code, json.Unmarshal(body, out)
}

// decode decodes the JSON answer to GET path into out as it is read, refusing more than max
// bytes: for answers too large to hold twice (a definitions export).
func (m management) decode(ctx context.Context, path string, out any, max int64) error {
	resp, err := m.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := bounded.ReadAll(resp.Body, 4<<10)
		return failed(http.MethodGet, path, resp.StatusCode, answer)
	}
	if err := json.NewDecoder(bounded.Reader(resp.Body, max)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// send makes a request with a JSON body (nil: none) and returns the status. Statuses other than
// 2xx are errors with their body, except notFound when allowed.
func (m management) send(ctx context.Context, method, path string, body any, allowNotFound bool) (int, error) {
	code, answer, err := m.do(ctx, method, path, body)
	if code == 0 {
		return 0, err
	}
	// The status decides; an answer cut short only loses detail from the error message.
	if code/100 == 2 || allowNotFound && code == http.StatusNotFound {
		return code, nil
	}
	return code, failed(method, path, code, answer)
}

// clusterNode is a node of the cluster as the management API lists it.
type clusterNode struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
}

// nodes are the cluster's nodes, running or not.
func (m management) nodes(ctx context.Context) ([]clusterNode, error) {
	var out []clusterNode
	_, err := m.get(ctx, "/api/nodes?columns=name,running", &out)
	return out, err
}

// quorumCritical asks whether stopping this node would leave a quorum queue without a majority of
// online members (the RabbitMQ cluster operator's check before it restarts a node). It returns
// "" when the node may stop, else why not.
func (m management) quorumCritical(ctx context.Context) (string, error) {
	var out struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Queues []struct {
			Name string `json:"readable_name"` // "queue 'orders' in vhost '/'"
		} `json:"queues"`
	}
	code, err := m.get(ctx, "/api/health/checks/node-is-quorum-critical", &out)
	if err != nil {
		return "", err
	}
	if code == http.StatusOK {
		return "", nil
	}
	var queues []string
	for _, q := range out.Queues {
		queues = append(queues, q.Name)
	}
	return fmt.Sprintf("%s (%s)", out.Reason, strings.Join(queues, ", ")), nil
}
