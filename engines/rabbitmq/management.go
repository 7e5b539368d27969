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
)

// management is a client of one node's management API, as the operator's administrator. Only the
// few calls the operator makes; the API is reachable on the pod network only.
type management struct {
	base           string // http://host:port
	user, password string
}

func nodeManagement(ip string, password string) management {
	return management{base: "http://" + net.JoinHostPort(ip, strconv.Itoa(managementPort)), user: AdminUser, password: password}
}

var managementClient = &http.Client{Timeout: 5 * time.Second}

// get decodes the JSON answer to GET path into out. Statuses other than 200 are returned with
// their body (the health checks answer 503 with a reason).
func (m management) get(ctx context.Context, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(m.user, m.password)
	resp, err := managementClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.StatusCode, json.Unmarshal(body, out)
}

// send makes a request with a JSON body (nil: none) and returns the status. Statuses other than
// 2xx are errors with their body, except notFound when allowed.
func (m management) send(ctx context.Context, method, path string, body any, allowNotFound bool) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(m.user, m.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := managementClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 || allowNotFound && resp.StatusCode == http.StatusNotFound {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
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
