package rabbitmq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	rmqagent "github.com/datafleet-dev/datafleet/engines/rabbitmq/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/promtest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// These tests run RabbitMQ nodes from Debian's rabbitmq-server (make test installs it) under the
// instance agent, on loopback, each with its own ports and one private epmd.

const testPassword = "operator-secret"

// scrapeToken is the token the nodes' agents serve their metrics to.
const scrapeToken = "test-scrape-token"

// localNode is one node started by the agent.
type localNode struct {
	name              string
	password          string // the administrator's, in the node's Secret
	amqp, mgmt, agent int
	// metrics is the agent's metrics endpoint, which answers scrapeToken.
	metrics string
	// agentAPI reaches the node's agent as the operator does.
	agentAPI fwagent.Conn
	stop     context.CancelFunc
	done     chan struct{} // closed when the agent has returned, with err
	err      error
	// process is the agent's process when the cluster runs agents in processes (localCluster.bin).
	process *agenttest.Process
}

func (n *localNode) management() management {
	return management{base: "http://127.0.0.1:" + strconv.Itoa(n.mgmt), user: AdminUser, password: n.password}
}

func (n *localNode) url() string {
	return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", AdminUser, n.password, n.amqp)
}

// halt stops the node as the kubelet would (SIGTERM to the agent) and waits for it.
func (n *localNode) halt(t *testing.T) {
	t.Helper()
	n.stop()
	select {
	case <-n.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop", n.name)
	}
}

type localCluster struct {
	t      *testing.T
	dir    string
	epmd   int
	cookie string
	// password is the administrator's password the next node started gets in its Secret.
	password string
	cred     *syscall.Credential
	peers    []string
	ports    [][4]int
	nodes    []*localNode
	// tlsDir, when set, holds the nodes' certificate files (the mounted Secret's part), and
	// amqps is the TLS listener's port.
	tlsDir string
	amqps  int
	// conf, when set, is the nodes' whole rabbitmq.conf (a rendered one); plainOff says it opens
	// no plain AMQP listener, so readiness waits for AMQPS alone.
	conf     string
	plainOff bool
	// agents is the agents' certificate (as the pods mount it) and the operator's client of them.
	agents *agenttest.Instance
	// bin, when set, is an agent binary (agenttest.Build) the nodes' agents run in processes of
	// their own, as the rabbitmq user, instead of in the test's process.
	bin string
}

func newLocalCluster(t *testing.T, size int) *localCluster {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("no rabbitmq-server: run `make test` (it installs the rabbitmq-server package), or apt-get install rabbitmq-server")
	}
	dir, err := os.MkdirTemp("", "rabbitmq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &localCluster{t: t, dir: dir, epmd: testenv.FreePort(t), cookie: "test-cookie-" + strconv.Itoa(os.Getpid()),
		password: testPassword, cred: testenv.ServerUser(t, "rabbitmq", "rabbitmq-server"), agents: agenttest.New(t)}
	c.agents.ScrapeToken(t, scrapeToken)
	// One epmd for all nodes, as on a host; rabbitmq-server would start one that outlives the test.
	epmd := exec.Command("epmd", "-port", strconv.Itoa(c.epmd), "-address", "127.0.0.1")
	if c.cred != nil {
		epmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if err := epmd.Start(); err != nil {
		t.Fatalf("starting epmd: %v", err)
	}
	t.Cleanup(func() { _ = epmd.Process.Kill(); _ = epmd.Wait() })
	// Cleanups run last in, first out: this one stops every node at once, and waits for them,
	// before epmd goes.
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
		for _, n := range c.nodes {
			select {
			case <-n.done:
			case <-time.After(2 * time.Minute):
			}
		}
	})
	for i := range size {
		c.peers = append(c.peers, fmt.Sprintf("n%d@127.0.0.1", i))
		c.ports = append(c.ports, [4]int{testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)})
	}
	return c
}

// start runs node i under the agent and returns once the agent serves; Ready comes later.
func (c *localCluster) start(i int, extraConf string) *localNode {
	t := c.t
	t.Helper()
	n := &localNode{name: c.peers[i], password: c.password, amqp: c.ports[i][0], mgmt: c.ports[i][1], agent: testenv.FreePort(t),
		metrics: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}
	base := filepath.Join(c.dir, strconv.Itoa(i))
	cfgDir, secretDir := filepath.Join(base, "config"), filepath.Join(base, "secret")
	for _, d := range []string{cfgDir, secretDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("listeners.tcp.default = %d\nmanagement.tcp.port = %d\nmanagement.tcp.ip = 127.0.0.1\n"+
		"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = %d\n"+
		"cluster_formation.peer_discovery_backend = classic_config\ncluster_formation.discovery_retry_limit = 60\n"+
		"cluster_formation.discovery_retry_interval = 1000\nlog.console = true\nlog.console.level = warning\nlog.file = false\n%s",
		n.amqp, n.mgmt, c.ports[i][3], extraConf)
	if c.conf != "" {
		conf = c.conf
	}
	amqpPort := n.amqp
	if c.plainOff {
		amqpPort = 0
	}
	var peers strings.Builder
	for j, p := range c.peers {
		fmt.Fprintf(&peers, "cluster_formation.classic_config.nodes.%d = %s\n", j+1, p)
	}
	files := map[string]string{
		filepath.Join(cfgDir, rmqagent.ConfigFile):      conf,
		filepath.Join(cfgDir, rmqagent.PeersFile):       peers.String(),
		filepath.Join(cfgDir, rmqagent.PluginsFile):     plugins,
		filepath.Join(secretDir, rmqagent.CookieFile):   c.cookie,
		filepath.Join(secretDir, rmqagent.PasswordFile): c.password,
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &rmqagent.Engine{Config: rmqagent.Config{
		NodeName: n.name, User: AdminUser, ConfigDir: cfgDir, SecretDir: secretDir,
		DataDir: filepath.Join(base, "data"), RunDir: filepath.Join(base, "run"), AMQPPort: amqpPort, AMQPSPort: c.amqps, TLSDir: c.tlsDir,
		Env:        []string{"ERL_EPMD_PORT=" + strconv.Itoa(c.epmd), "RABBITMQ_DIST_PORT=" + strconv.Itoa(c.ports[i][2])},
		Credential: c.cred,
	}}
	addr := "127.0.0.1:" + strconv.Itoa(n.agent)
	n.agentAPI = c.agents.At(addr)
	c.nodes = append(c.nodes, n)
	if c.bin != "" {
		if c.cred != nil { // the agent runs as rabbitmq and makes its directories itself
			if err := os.Chown(base, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
		cfg := e.Config
		env := append(slices.Clone(cfg.Env), fwagent.EnvMetricsAddress+"="+n.metrics)
		n.process = c.agents.StartProcess(t, agenttest.Command{Bin: c.bin, Engine: "rabbitmq", Addr: addr, Owner: c.cred, Env: env,
			Args: fwagent.Flags(rmqagent.Args{NodeName: cfg.NodeName, ConfigDir: cfg.ConfigDir, SecretDir: cfg.SecretDir, DataDir: cfg.DataDir,
				RunDir: cfg.RunDir, AMQPPort: &amqpPort, TLSDir: cfg.TLSDir, AMQPSPort: cfg.AMQPSPort})})
		n.stop, n.done = func() { _ = n.process.Stop() }, make(chan struct{})
		go func() { <-n.process.Done(); n.err = n.process.Err(); close(n.done) }()
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	// done is closed rather than sent on: a halted node is waited for again by the cleanup.
	n.stop, n.done = cancel, make(chan struct{})
	listen := c.agents.Listen(addr)
	listen.MetricsAddr = n.metrics
	go func() { n.err = agentruntime.Run(ctx, e, listen); close(n.done) }()
	return n
}

// writeServerCert issues a server certificate for dnsNames from ca into c.tlsDir (the mounted
// Secret's files), which it makes the nodes' TLS directory, and returns it.
func (c *localCluster) writeServerCert(ca *certs.Authority, dnsNames []string, now time.Time) *x509.Certificate {
	t := c.t
	t.Helper()
	c.tlsDir = filepath.Join(c.dir, "tls")
	if err := os.MkdirAll(c.tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(dnsNames, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{certs.CertKey: certPEM, certs.KeyKey: keyPEM, certs.CAKey: ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(c.tlsDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	leaf, _ := certs.ParseCertificate(certPEM)
	return leaf
}

// waitReady waits for the agent to report the node ready.
func waitReady(t *testing.T, nodes ...*localNode) {
	t.Helper()
	for _, n := range nodes {
		testenv.Eventually(t, 3*time.Minute, func() error {
			select {
			case <-n.done:
				t.Fatalf("%s stopped: %v", n.name, n.err)
			default:
			}
			st, err := n.agentAPI.Status(context.Background())
			if err != nil {
				return err
			}
			if !st.Ready {
				return errors.New(st.Detail)
			}
			return nil
		})
	}
}

// Three nodes started at the same moment form one cluster through the classic peer list; a
// rolling update does not restart a quorum-critical node (checkRollGate); 1,000
// persistent messages confirmed into a quorum queue survive losing a node; the management API's
// quorum-critical check, which gates every restart in a rolling update, refuses to let a second
// node go while one is down and lets it go again once the node is back.
func TestThreeNodesFormOneClusterAndQuorumQueuesSurviveANode(t *testing.T) {
	c := newLocalCluster(t, 3)
	nodes := []*localNode{c.start(0, ""), c.start(1, ""), c.start(2, "")}
	waitReady(t, nodes...)
	ctx := context.Background()
	testenv.Eventually(t, time.Minute, func() error { return clusterOf(ctx, nodes[0], c.peers...) })
	if err := clusterOf(ctx, nodes[2], c.peers...); err != nil {
		t.Fatalf("the third node sees another cluster: %v", err)
	}
	checkRollGate(t, nodes)

	const queue, count = "orders", 1000
	publish(t, nodes[0], queue, count)
	// The agents serve the broker's figures and the cluster as each node sees it.
	for _, n := range nodes {
		scrapeUntil(t, c, n, func(s promtest.Families) error {
			if err := brokerFigures(s); err != nil {
				return err
			}
			return wantValues(map[string]float64{"datafleet_rabbitmq_up": 1, "datafleet_rabbitmq_quorum_critical": 0,
				"datafleet_rabbitmq_cluster_nodes": 3}, map[string][]string{"datafleet_rabbitmq_cluster_nodes": {"state=running"}})(s)
		})
	}
	// The queue and its messages count on the node that leads it, once the broker's statistics
	// have caught up (every 5 s).
	testenv.Eventually(t, time.Minute, func() error {
		var queues, ready float64
		for _, n := range nodes {
			s, err := c.agents.Scrape(ctx, n.metrics, scrapeToken)
			if err != nil {
				return err
			}
			q, _ := s.Value("rabbitmq_queues")
			r, _ := s.Value("rabbitmq_queue_messages_ready")
			queues, ready = queues+q, ready+r
		}
		if queues != 1 || ready != count {
			return fmt.Errorf("the nodes count %v queues and %v messages ready, want 1 and %d", queues, ready, count)
		}
		return nil
	})
	// Every member must hold the messages before one goes: a quorum queue confirms on a majority.
	nodes[2].halt(t)
	why, err := nodes[0].management().quorumCritical(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(why, queue) {
		t.Errorf("with one node down, stopping another must be quorum-critical for %s; the check said %q", queue, why)
	}
	for _, n := range nodes[:2] {
		scrapeUntil(t, c, n, wantValues(map[string]float64{"datafleet_rabbitmq_quorum_critical": 1, "datafleet_rabbitmq_cluster_nodes": 1},
			map[string][]string{"datafleet_rabbitmq_cluster_nodes": {"state=stopped"}}))
	}
	if got := consume(t, nodes[1], queue, count); got != count {
		t.Fatalf("consumed %d of %d confirmed messages after losing a node", got, count)
	}

	nodes[2] = c.start(2, "")
	waitReady(t, nodes[2])
	testenv.Eventually(t, time.Minute, func() error {
		why, err := nodes[0].management().quorumCritical(ctx)
		if err == nil && why != "" {
			err = errors.New(why)
		}
		return err
	})
}

// clusterOf checks that n sees exactly the named nodes, all running.
func clusterOf(ctx context.Context, n *localNode, want ...string) error {
	nodes, err := n.management().nodes(ctx)
	if err != nil {
		return err
	}
	var running []string
	for _, cn := range nodes {
		if cn.Running {
			running = append(running, cn.Name)
		}
	}
	slices.Sort(running)
	if !slices.Equal(running, want) {
		return fmt.Errorf("%s sees running nodes %v, want %v", n.name, running, want)
	}
	return nil
}

// channel opens a channel to the node as the administrator; it closes with the test.
func channel(t *testing.T, n *localNode) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(n.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func publish(t *testing.T, n *localNode, queue string, count int) {
	t.Helper()
	ch := channel(t, n)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, count))
	for i := range count {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range count {
		if c := <-confirms; !c.Ack {
			t.Fatalf("message %d was not confirmed", c.DeliveryTag)
		}
	}
}

// consume takes every message there is and returns how many distinct ones it got.
func consume(t *testing.T, n *localNode, queue string, want int) int {
	t.Helper()
	ch := channel(t, n)
	seen := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for len(seen) < want && time.Now().Before(deadline) {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		seen[string(m.Body)] = true
	}
	return len(seen)
}

// A renewed certificate is served to new AMQPS connections after the agent's reload; the node
// does not restart and a connection opened before carries on.
func TestRenewedCertificateIsServedWithoutRestart(t *testing.T) {
	defer func(d time.Duration) { agentruntime.ReloadInterval = d }(agentruntime.ReloadInterval)
	agentruntime.ReloadInterval = 200 * time.Millisecond
	now := time.Now()
	ca, err := certs.NewAuthority("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	c := newLocalCluster(t, 1)
	const host = "events.default.svc"
	writeCert := func() *x509.Certificate {
		return c.writeServerCert(ca, certs.DNSNames("default", "cluster.local", "events"), now)
	}
	first := writeCert()
	amqps := testenv.FreePort(t)
	c.amqps = amqps
	n := c.start(0, fmt.Sprintf("listeners.ssl.default = %d\nssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n",
		amqps, filepath.Join(c.tlsDir, certs.CAKey), filepath.Join(c.tlsDir, certs.CertKey), filepath.Join(c.tlsDir, certs.KeyKey)))
	waitReady(t, n)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	dial := func() (*amqp.Connection, *x509.Certificate) {
		t.Helper()
		// Ready includes the TLS listener, which opens a moment after the plain one.
		conn, err := amqp.DialTLS(fmt.Sprintf("amqps://%s:%s@127.0.0.1:%d/", AdminUser, testPassword, amqps),
			&tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("AMQPS verified against the CA: %v", err)
		}
		return conn, conn.ConnectionState().PeerCertificates[0]
	}
	open, served := dial()
	defer open.Close()
	if served.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the node serves another certificate than the mounted one")
	}
	pid := osPID(t, n)

	second := writeCert()
	testenv.Eventually(t, time.Minute, func() error {
		conn, served := dial()
		conn.Close()
		if served.SerialNumber.Cmp(second.SerialNumber) != 0 {
			return errors.New("the renewed certificate is not served yet")
		}
		return nil
	})
	if got := osPID(t, n); got != pid {
		t.Errorf("the node restarted (pid %s, now %s)", pid, got)
	}
	ch, err := open.Channel()
	if err != nil {
		t.Fatalf("a connection opened before the renewal broke: %v", err)
	}
	ch.Close()
}

// The management API lists a node before its statistics (os_pid among them) are first collected:
// on a loaded machine the first answer after Ready had none, and the test read "" as the pid.
func osPID(t *testing.T, n *localNode) string {
	t.Helper()
	var pid string
	testenv.Eventually(t, time.Minute, func() error {
		var nodes []struct {
			PID string `json:"os_pid"`
		}
		if _, err := n.management().get(context.Background(), "/api/nodes", &nodes); err != nil || len(nodes) != 1 {
			return fmt.Errorf("nodes: %v %v", err, nodes)
		}
		if pid = nodes[0].PID; pid == "" {
			return errors.New("the node's os_pid is not reported yet")
		}
		return nil
	})
	return pid
}

// spec.tls.required on a real node, with the configuration Render writes: RabbitMQ itself lists
// no plain listener (AMQP or the management API's HTTP), AMQPS serves, and the operator's
// management client reaches the API over TLS, verified against the instance's CA (and refuses a
// server it cannot verify).
func TestTLSRequiredLeavesNoPlainListener(t *testing.T) {
	now := time.Now()
	ca, err := certs.NewAuthority("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	c := newLocalCluster(t, 1)
	inst := enginetest.Instance(Name, "events", 1)
	inst.Spec.TLS = &v1alpha1.TLSSpec{Enabled: true, Required: true}
	c.writeServerCert(ca, certs.DNSNames("default", "cluster.local", Engine{}.TLSNames(inst)...), now)
	// The rendered configuration, with this machine's free ports and the certificate's directory,
	// for a release before 3.13 like the one installed here (default_queue_type is unknown to it).
	c.amqps = testenv.FreePort(t)
	mgmtTLS := c.ports[0][1]
	c.conf = strings.NewReplacer("= "+strconv.Itoa(amqpsPort)+"\n", "= "+strconv.Itoa(c.amqps)+"\n",
		"= "+strconv.Itoa(managementTLSPort)+"\n", "= "+strconv.Itoa(mgmtTLS)+"\n",
		"= "+strconv.Itoa(prometheusPort)+"\n", "= "+strconv.Itoa(c.ports[0][3])+"\n", workload.ServerTLSMount, c.tlsDir).Replace(config(inst, release310))
	c.plainOff = true
	n := c.start(0, "")
	waitReady(t, n)

	verified, err := verifyingTLS(ca.CertPEM, workload.ServiceName(inst)+".default.svc")
	if err != nil {
		t.Fatal(err)
	}
	m := management{base: "https://127.0.0.1:" + strconv.Itoa(mgmtTLS), user: AdminUser, password: testPassword, tls: verified}
	var overview struct {
		Listeners []struct {
			Protocol string `json:"protocol"`
			Port     int    `json:"port"`
			IP       string `json:"ip_address"`
		} `json:"listeners"`
	}
	if _, err := m.get(context.Background(), "/api/overview", &overview); err != nil {
		t.Fatalf("the management API over TLS: %v", err)
	}
	var protocols []string
	for _, l := range overview.Listeners {
		if l.Protocol == "http/prometheus" {
			// The metrics plugin, for the agent, which serves it with TLS. The API names every web
			// listener's address "::"; the socket's own says where it listens.
			if got := listening(t, l.Port); !slices.Equal(got, []string{"127.0.0.1"}) {
				t.Errorf("the metrics plugin listens on %v, want loopback only", got)
			}
			continue
		}
		protocols = append(protocols, l.Protocol+" on "+l.IP)
	}
	slices.Sort(protocols)
	if want := []string{"amqp/ssl on ::", "clustering on ::", "https on ::"}; !slices.Equal(slices.Compact(protocols), want) {
		t.Errorf("the node listens for %v, want %v: a plain listener is open", protocols, want)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	conn, err := amqp.DialTLS(fmt.Sprintf("amqps://%s:%s@127.0.0.1:%d/", AdminUser, testPassword, c.amqps),
		&tls.Config{RootCAs: pool, ServerName: workload.ServiceName(inst) + ".default.svc", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("AMQPS: %v", err)
	}
	conn.Close()
	// The agent reads the management API over the TLS listener, the only one there is.
	scrapeUntil(t, c, n, wantValues(map[string]float64{"datafleet_rabbitmq_up": 1, "datafleet_member_exporter_up": 1}, nil))

	other, err := certs.NewAuthority("another CA", now)
	if err != nil {
		t.Fatal(err)
	}
	m.tls, _ = verifyingTLS(other.CertPEM, workload.ServiceName(inst)+".default.svc")
	if _, err := m.get(context.Background(), "/api/overview", &overview); err == nil {
		t.Error("the management client trusted a certificate of another CA")
	}
}
