package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// Port is where the agent serves its endpoints in an engine's pod.
const Port = 8000

var client = &http.Client{Timeout: 2 * time.Second}

// maxStatus bounds an agent's status answer.
const maxStatus = 64 << 10

// actionClient waits longer: an action may move data.
var actionClient = &http.Client{Timeout: 5 * time.Minute}

// Act asks the agent at ip to carry out an action (see Actor) and returns its error, if any.
func Act(ctx context.Context, ip, token, action string, params url.Values) error {
	return ActAt(ctx, Address(ip), token, action, params)
}

// ActAt is Act with the agent's address (host:port).
func ActAt(ctx context.Context, addr, token, action string, params url.Values) error {
	resp, err := post(ctx, actionClient, addr, token, PathAction+url.PathEscape(action),
		"application/x-www-form-urlencoded", io.NopCloser(strings.NewReader(params.Encode())))
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// streamClient has no overall timeout: a dump or load takes as long as the data needs; the
// caller's context bounds it.
var streamClient = &http.Client{}

// Dump streams the dump of the agent at addr (host:port) into w and returns nil only if the
// agent reported it complete.
func Dump(ctx context.Context, addr, token string, w io.Writer) error {
	resp, err := post(ctx, streamClient, addr, token, PathDump, "application/octet-stream", http.NoBody)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("dump from %s: %w", addr, err)
	}
	switch result := resp.Trailer.Get(trailerResult); result {
	case "ok":
		return nil
	case "":
		return fmt.Errorf("dump from %s: the stream ended without a result: the agent stopped", addr)
	default:
		return fmt.Errorf("dump from %s: %s", addr, result)
	}
}

// Load streams r to the agent at addr (host:port), which applies it, and returns the agent's
// summary of what it checked.
func Load(ctx context.Context, addr, token string, r io.Reader) (string, error) {
	resp, err := post(ctx, streamClient, addr, token, PathLoad, "application/octet-stream", io.NopCloser(r))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	summary, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return strings.TrimSpace(string(summary)), err
}

// post sends an authorised request to the agent at addr; a status other than 200 is an error
// with the agent's answer.
func post(ctx context.Context, client *http.Client, addr, token, path, contentType string, body io.ReadCloser) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s on %s: %s: %s", path, addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// Address is the agent's host:port in a pod.
func Address(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(Port)) }

// Probe asks the agent of every running pod for its status, concurrently. An entry is nil when
// the pod is not running or its agent did not answer.
func Probe(ctx context.Context, pods []corev1.Pod) []*Status {
	return ProbeWith(ctx, pods, func(p *corev1.Pod) string { return Address(p.Status.PodIP) })
}

// ProbeWith is Probe with the agents' addresses (host:port) given by address.
func ProbeWith(ctx context.Context, pods []corev1.Pod, address func(*corev1.Pod) string) []*Status {
	out := make([]*Status, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		if pods[i].Status.PodIP == "" || pods[i].Status.Phase != corev1.PodRunning {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i], _ = StatusAt(ctx, address(&pods[i]))
		}(i)
	}
	wg.Wait()
	return out
}

// StatusAt asks the agent at addr (host:port) for its status.
func StatusAt(ctx context.Context, addr string) (*Status, error) {
	url := "http://" + addr + PathStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: %s", addr, resp.Status)
	}
	// A status is a few hundred bytes; whatever answers at a pod's address is read no further.
	body, err := bounded.ReadAll(resp.Body, maxStatus)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	return &st, nil
}
