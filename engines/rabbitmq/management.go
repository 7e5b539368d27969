package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// management is a client of one node's management API, as the operator's administrator. Only the
// few calls the operator makes; the API is reachable on the pod network only.
type management struct {
	base           string // http://host:port
	user, password string
	// client sends the requests; nil: managementClient (5 s). A restore's definitions import
	// takes as long as the definitions need, bounded by its Job's deadline.
	client *http.Client
}

func nodeManagement(ip string, password string) management {
	return management{base: "http://" + net.JoinHostPort(ip, strconv.Itoa(managementPort)), user: AdminUser, password: password}
}

var managementClient = &http.Client{Timeout: 5 * time.Second}

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
	resp, err := m.request(ctx, m.httpClient(), method, path, rd)
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

// httpClient is m's own client, else the management API's default with its short timeout.
func (m management) httpClient() *http.Client {
	if m.client != nil {
		return m.client
	}
	return managementClient
}

// request makes one request as the administrator with client, a JSON body when rd is not nil.
func (m management) request(ctx context.Context, client *http.Client, method, path string, rd io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(m.user, m.password)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return client.Do(req)
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
	resp, err := m.request(ctx, m.httpClient(), http.MethodGet, path, nil)
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
