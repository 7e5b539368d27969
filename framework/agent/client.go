package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// Port is where the agent serves its endpoints in an engine's pod.
const Port = 8000

// maxStatus bounds an agent's status answer.
const maxStatus = 64 << 10

// Timeouts of the agent's clients: a status is quick, an action may move data, a dump or load
// takes as long as the data needs (the caller's context bounds it).
const (
	statusTimeout = 2 * time.Second
	actionTimeout = 5 * time.Minute
)

// ErrPredatesTLS is returned for an action asked of an agent that predates mutual TLS: it would
// need a password sent in clear. Its pod is replaced by the rolling update that the operator's
// upgrade started; until then the operator only reads its status.
var ErrPredatesTLS = errors.New("the agent predates mutual TLS (its pod runs an older pod template and is replaced by the rolling update)")

// Dialer reaches the agents of one instance with a client certificate its CA signed.
type Dialer struct {
	config func() (*tls.Config, error)
	// Address overrides where a pod's agent listens (tests run agents on loopback).
	Address func(*corev1.Pod) string
}

// DialerFunc presents and verifies with what config returns at each connection (a configuration
// read again when its files change, as agentruntime.PeerDialer does).
func DialerFunc(config func() (*tls.Config, error)) Dialer { return Dialer{config: config} }

// NewDialer presents and verifies with cfg (see ClientTLSFromPEM).
func NewDialer(cfg *tls.Config) Dialer {
	return Dialer{config: func() (*tls.Config, error) { return cfg, nil }}
}

// Pod is the agent of pod p. A pod whose spec has no TLSVolume was made from a pod template that
// predates mutual TLS: its status is read over plain HTTP (nothing secret is sent), and actions
// fail with ErrPredatesTLS.
func (d Dialer) Pod(p *corev1.Pod) Conn {
	addr := Address(p.Status.PodIP)
	if d.Address != nil {
		addr = d.Address(p)
	}
	legacy := !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == TLSVolume })
	return Conn{Addr: addr, dialer: d, legacy: legacy}
}

// At is the agent at addr (host:port).
func (d Dialer) At(addr string) Conn { return Conn{Addr: addr, dialer: d} }

// Conn is one agent.
type Conn struct {
	Addr   string
	dialer Dialer
	legacy bool
}

func (c Conn) client(timeout time.Duration) (*http.Client, string, error) {
	if c.legacy {
		return &http.Client{Timeout: timeout}, "http://", nil
	}
	if c.dialer.config == nil {
		return nil, "", fmt.Errorf("agent at %s: no client certificate for its instance yet", c.Addr)
	}
	cfg, err := c.dialer.config()
	if err != nil {
		return nil, "", err
	}
	// No connection is kept: an operator reaches thousands of agents, each now and then.
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, TLSHandshakeTimeout: 5 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, ExpectContinueTimeout: 5 * time.Second}
	return &http.Client{Transport: tr, Timeout: timeout}, "https://", nil
}

// Act asks the agent to carry out an action (see Actor) and returns its error, if any.
func (c Conn) Act(ctx context.Context, action string, params url.Values) error {
	resp, err := c.post(ctx, actionTimeout, PathAction+url.PathEscape(action),
		"application/x-www-form-urlencoded", io.NopCloser(strings.NewReader(params.Encode())))
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Dump streams the agent's dump into w and returns nil only if the agent reported it complete.
func (c Conn) Dump(ctx context.Context, w io.Writer) error {
	_, err := c.stream(ctx, "dump", PathDump, w)
	return err
}

// BaseBackup streams the agent's base backup into w and returns where it starts in the log, with
// a nil error only if the agent reported it complete.
func (c Conn) BaseBackup(ctx context.Context, w io.Writer) (BaseBackupInfo, error) {
	var info BaseBackupInfo
	trailer, err := c.stream(ctx, "base backup", PathBase, w)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(trailer.Get(TrailerBaseBackup)), &info); err != nil || info.StartSegment == "" {
		return info, fmt.Errorf("base backup from %s: no start in the log reported (%v)", c.Addr, err)
	}
	return info, nil
}

// stream copies what the agent streams at path into w; the trailer says whether it was complete.
func (c Conn) stream(ctx context.Context, what, path string, w io.Writer) (http.Header, error) {
	resp, err := c.post(ctx, 0, path, "application/octet-stream", http.NoBody)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, fmt.Errorf("%s from %s: %w", what, c.Addr, err)
	}
	switch result := resp.Trailer.Get(TrailerResult); result {
	case "ok":
		return resp.Trailer, nil
	case "":
		return nil, fmt.Errorf("%s from %s: the stream ended without a result: the agent stopped", what, c.Addr)
	default:
		return nil, fmt.Errorf("%s from %s: %s", what, c.Addr, result)
	}
}

// Load streams r to the agent, which applies it, and returns the agent's summary of what it
// checked.
func (c Conn) Load(ctx context.Context, r io.Reader) (string, error) {
	resp, err := c.post(ctx, 0, PathLoad, "application/octet-stream", io.NopCloser(r))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	summary, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return strings.TrimSpace(string(summary)), err
}

// post sends a request to the agent; a status other than 200 is an error with the agent's answer.
func (c Conn) post(ctx context.Context, timeout time.Duration, path, contentType string, body io.ReadCloser) (*http.Response, error) {
	if c.legacy {
		return nil, fmt.Errorf("%s on %s: %w", path, c.Addr, ErrPredatesTLS)
	}
	client, scheme, err := c.client(timeout)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+c.Addr+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s on %s: %s: %s", path, c.Addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// Status asks the agent for its status.
func (c Conn) Status(ctx context.Context) (*Status, error) {
	var st Status
	if found, err := c.getJSON(ctx, PathStatus, &st); err != nil {
		return nil, err
	} else if !found {
		return nil, fmt.Errorf("status of %s: %s", c.Addr, http.StatusText(http.StatusNotFound))
	}
	return &st, nil
}

// getJSON decodes the agent's answer to GET path into out; found is false when the agent has no
// such endpoint (404). An answer is a few hundred bytes: whatever answers at a pod's address is
// read no further than maxStatus.
func (c Conn) getJSON(ctx context.Context, path string, out any) (found bool, err error) {
	client, scheme, err := c.client(statusTimeout)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+c.Addr+path, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("%s of %s: %s", path, c.Addr, resp.Status)
	}
	body, err := bounded.ReadAll(resp.Body, maxStatus)
	if err != nil {
		return false, fmt.Errorf("%s of %s: %w", path, c.Addr, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return false, fmt.Errorf("%s of %s: %w", path, c.Addr, err)
	}
	return true, nil
}

// Agent asks the agent which binary runs. An agent older than in-place upgrades has no such
// endpoint: it says nothing (an empty Info), and can only be replaced with its pod.
func (c Conn) Agent(ctx context.Context) (*Info, error) {
	var info Info
	if _, err := c.getJSON(ctx, PathAgent, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// upgradeTimeout bounds sending a new agent binary (about 100 MB) to one pod.
const upgradeTimeout = 5 * time.Minute

// Upgrade sends the agent a new binary of size bytes whose sha256 is digest. It returns once the
// agent verified and ran it and is handing over to it: asking Agent shows when the new one serves.
func (c Conn) Upgrade(ctx context.Context, bin io.Reader, size int64, digest string) error {
	if c.legacy {
		return fmt.Errorf("%s on %s: %w", PathAgent, c.Addr, ErrPredatesTLS)
	}
	client, scheme, err := c.client(upgradeTimeout)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, scheme+c.Addr+PathAgent, io.NopCloser(bin))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderDigest, digest)
	// The agent answers a refusal (not the operator, a binary it runs already) before the body:
	// the binary is not sent for nothing, and the refusal is read, not cut off mid-upload.
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s on %s: %s: %s", PathAgent, c.Addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Address is the agent's host:port in a pod.
func Address(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(Port)) }

// Probe asks the agent of every running pod for its status, concurrently. An entry is nil when
// the pod is not running or its agent did not answer.
func Probe(ctx context.Context, d Dialer, pods []corev1.Pod) []*Status {
	out := make([]*Status, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		if pods[i].Status.PodIP == "" || pods[i].Status.Phase != corev1.PodRunning {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i], _ = d.Pod(&pods[i]).Status(ctx)
		}(i)
	}
	wg.Wait()
	return out
}
