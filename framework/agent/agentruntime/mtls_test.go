package agentruntime_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/certs"
)

// engine records what it was asked: the actions it carried out and how often its status (a
// database session, for PostgreSQL) was taken.
type engine struct {
	mu       sync.Mutex
	acted    []string
	statuses int
}

func (e *engine) Bootstrap(context.Context) error { return nil }
func (e *engine) Command() *exec.Cmd              { return nil }
func (e *engine) StopSignal() os.Signal           { return nil }
func (e *engine) Status(context.Context) fwagent.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.statuses++
	return fwagent.Status{Ready: true, Role: "primary"}
}
func (e *engine) Act(_ context.Context, action string, _ url.Values) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.acted = append(e.acted, action)
	return nil
}
func (e *engine) Dump(_ context.Context, w io.Writer) error {
	_, err := io.WriteString(w, "the whole database")
	return err
}
func (e *engine) Load(context.Context, io.Reader) (string, error) { return "loaded", nil }

func (e *engine) actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.acted...)
}

// serve runs the agent's handler behind its real listener configuration.
func serve(t *testing.T, e fwagent.Engine, dir string) string {
	t.Helper()
	cfg, err := agentruntime.ServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(agentruntime.Handler(e))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://")
}

// The agent API answers /status, /action and /stream only to a client certificate of its own
// instance for client use, naming the operator or an agent (issue #23, review M1/M3): plain HTTP,
// no certificate, another instance's certificate, the database's server certificate and a
// certificate with another name all get nothing, and no action runs. The kubelet's probes need
// no certificate.
func TestTheAgentAPIAnswersOnlyItsInstancesClients(t *testing.T) {
	inst, other := agenttest.New(t), agenttest.New(t)
	e := &engine{}
	addr := serve(t, e, inst.Dir)
	ctx := context.Background()

	// The operator and the instance's agents (peers, backup Jobs) are answered.
	if st, err := inst.At(addr).Status(ctx); err != nil || st.Role != "primary" {
		t.Fatalf("the operator's status: %v %v", st, err)
	}
	if err := inst.At(addr).Act(ctx, "by-operator", nil); err != nil {
		t.Fatal(err)
	}
	peer, err := fwagent.ClientTLSFromPEM(inst.CertPEM, inst.KeyPEM, inst.CA.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := fwagent.NewDialer(peer).At(addr).Act(ctx, "by-peer", nil); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if err := inst.At(addr).Dump(ctx, &dump); err != nil || dump.String() != "the whole database" {
		t.Fatalf("dump %q: %v", dump.String(), err)
	}

	now := time.Now()
	serverCert, serverKey, err := inst.CA.Issue([]string{"orders.default.svc"}, now)
	if err != nil {
		t.Fatal(err)
	}
	appCert, appKey, err := inst.CA.IssueClient("app", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]*http.Client{
		"another instance's operator certificate":  clientWith(t, other, nil, nil),
		"the database's server certificate":        clientWith(t, inst, serverCert, serverKey),
		"a certificate of the CA for another name": clientWith(t, inst, appCert, appKey),
		"no client certificate":                    clientWith(t, inst, []byte{}, nil),
	}
	for what, c := range refused {
		for _, path := range []string{fwagent.PathStatus, fwagent.PathAction + "by-" + strings.ReplaceAll(what, " ", "-"), fwagent.PathDump, fwagent.PathLoad} {
			method := http.MethodPost
			if path == fwagent.PathStatus {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(""))
			resp, err := c.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s: %s %s answered %s: %s", what, method, path, resp.Status, body)
				}
			}
		}
	}
	// Plain HTTP to the agent's port gets no answer of the API.
	resp, err := http.Post("http://"+addr+fwagent.PathAction+"in-clear", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("an action in clear was answered")
		}
	}
	if got := e.actions(); strings.Join(got, ",") != "by-operator,by-peer" {
		t.Errorf("actions carried out: %v, want only the operator's and the peer's", got)
	}

	// The kubelet's probes: TLS without a certificate, nothing verified.
	probe := clientWith(t, inst, []byte{}, nil)
	for _, path := range []string{fwagent.PathHealth, fwagent.PathReady} {
		resp, err := probe.Get("https://" + addr + path)
		if err != nil {
			t.Fatalf("probe %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe %s: %s", path, resp.Status)
		}
	}
}

// The operator verifies the agent: a server in the instance's CA without the agent's name (the
// database's own certificate) is not an agent, and another instance's agent is not this one's.
func TestTheOperatorRefusesWhatIsNotTheInstancesAgent(t *testing.T) {
	inst, other := agenttest.New(t), agenttest.New(t)
	ctx := context.Background()
	otherAgent := serve(t, &engine{}, other.Dir)
	if _, err := inst.At(otherAgent).Status(ctx); err == nil {
		t.Error("another instance's agent was taken for this instance's")
	}
	serverCert, serverKey, err := inst.CA.Issue([]string{"orders.default.svc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dbDir := t.TempDir()
	writeTLSDir(t, dbDir, serverCert, serverKey, inst.CA.CertPEM)
	e := &engine{}
	if err := inst.At(serve(t, e, dbDir)).Act(ctx, "to-an-impostor", nil); err == nil || len(e.actions()) != 0 {
		t.Errorf("an action went to a server with the database's certificate: %v", err)
	}
}

// A pod made from a template without the agent's certificate predates mutual TLS: the operator
// reads its status in clear but sends it no action (which would need a password).
func TestAPodFromBeforeMutualTLSIsOnlyRead(t *testing.T) {
	e := &engine{}
	srv := httptest.NewServer(agentruntime.Handler(e))
	defer srv.Close()
	d := agenttest.New(t).Operator
	d.Address = func(*corev1.Pod) string { return strings.TrimPrefix(srv.URL, "http://") }
	old := d.Pod(&corev1.Pod{})
	if err := old.Act(context.Background(), "anything", nil); err == nil || !strings.Contains(err.Error(), fwagent.ErrPredatesTLS.Error()) {
		t.Errorf("an action to an old agent: %v", err)
	}
	if len(e.actions()) != 0 {
		t.Error("an old agent was asked to act")
	}
	current := d.Pod(&corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: fwagent.TLSVolume}}}})
	if _, err := current.Status(context.Background()); err == nil {
		t.Error("a current pod's agent was read in clear")
	}
}

// The probes need no certificate, so anyone who reaches the port may ask them: the engine's
// status (a database session for PostgreSQL) is taken at most once a second however often.
func TestProbesDoNotAskTheEngineForEveryRequest(t *testing.T) {
	inst := agenttest.New(t)
	e := &engine{}
	addr := serve(t, e, inst.Dir)
	probe := clientWith(t, inst, []byte{}, nil)
	for range 50 {
		resp, err := probe.Get("https://" + addr + fwagent.PathReady)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.statuses > 2 {
		t.Errorf("50 readiness probes asked the engine %d times", e.statuses)
	}
}

// clientWith is an HTTPS client that trusts inst's agents and presents certPEM/keyPEM; nil
// presents the operator's certificate of inst, an empty certPEM none.
func clientWith(t *testing.T, inst *agenttest.Instance, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	switch {
	case certPEM == nil:
		var err error
		if certPEM, keyPEM, err = inst.CA.IssueClient(fwagent.OperatorIdentity, time.Hour, time.Now()); err != nil {
			t.Fatal(err)
		}
		fallthrough
	case len(certPEM) > 0:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 5 * time.Second}
}

func writeTLSDir(t *testing.T, dir string, certPEM, keyPEM, caPEM []byte) {
	t.Helper()
	for name, b := range map[string][]byte{certs.CertKey: certPEM, certs.KeyKey: keyPEM, certs.CAKey: caPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
