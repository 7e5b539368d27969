package scale

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/engines/mongodb"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// podIPIndex indexes the harness's pods by address.
const podIPIndex = "status.podIP"

// rabbitmqManagementPort is where RabbitMQ's management API answers without TLS.
const rabbitmqManagementPort = 15672

// standIn answers, at every fake pod's address, what the operator asks of a pod: no process runs
// in a kwok pod, so this is a stand-in, not the product. It plays
//   - the instance agent's HTTP API (port 8000, TLS with the pod's own agent certificate from its
//     instance's Secret, as the agent serves it): a ready status in the role the instance gives
//     the pod, actions done at once (a PostgreSQL primary's users recorded, standin_users.go);
//   - RabbitMQ's management API (port 15672): every wanted node running, users, vhosts and
//     permissions recorded;
//   - a PostgreSQL pod's agent with its instance's primary Lease: the product's own keeper,
//     which reads the lease every tick and renews it as the holder (standin_agents.go).
//
// Its reads go to its own cache and its writes are the harness's, not the operator's, in the
// audit log.
type standIn struct {
	cache cache.Cache
	c     client.Client

	mu    sync.Mutex
	certs map[types.NamespacedName]agentCert
	users userStore
}

type agentCert struct {
	version string
	cert    *tls.Certificate
}

// startStandIn routes podRange to this machine's loopback device, so that every fake pod's
// address is this machine's, and serves there until the test ends.
func startStandIn(tb testing.TB, ctx context.Context, informers cache.Cache, c client.Client) *standIn {
	tb.Helper()
	if out, err := exec.Command("ip", "route", "replace", "local", podRange, "dev", "lo").CombinedOutput(); err != nil {
		tb.Fatalf("routing the fake pods' range %s to this machine needs root (CAP_NET_ADMIN): ip route: %v: %s", podRange, err, out)
	}
	tb.Cleanup(func() { _ = exec.Command("ip", "route", "del", "local", podRange, "dev", "lo").Run() })
	if err := informers.IndexField(ctx, &corev1.Pod{}, podIPIndex, func(o client.Object) []string {
		if ip := o.(*corev1.Pod).Status.PodIP; ip != "" {
			return []string{ip}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	s := &standIn{cache: informers, c: c, certs: map[types.NamespacedName]agentCert{}}
	agentMux := http.NewServeMux()
	agentMux.HandleFunc("GET /status", s.agentStatus)
	agentMux.HandleFunc("POST /action/{name}", s.agentUsers)
	agentSrv := &http.Server{Handler: agentMux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.agentCertificate},
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			return context.WithValue(ctx, localAddrKey{}, conn.LocalAddr())
		}}
	mgmtMux := http.NewServeMux()
	mgmtMux.HandleFunc("GET /api/nodes", s.rabbitmqNodes)
	s.routeUsers(mgmtMux)
	mgmtSrv := &http.Server{Handler: mgmtMux, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: agentSrv.ConnContext}
	s.serve(tb, agentSrv, fwagent.Port, true)
	s.serve(tb, mgmtSrv, rabbitmqManagementPort, false)
	return s
}

type localAddrKey struct{}

// serve listens on port at every address of the machine: the fake pods' included.
func (s *standIn) serve(tb testing.TB, srv *http.Server, port int, withTLS bool) {
	tb.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		tb.Fatalf("the stand-in answers at every fake pod on port %d, which another process holds: %v", port, err)
	}
	go func() {
		if withTLS {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("stand-in on port %d: %v", port, err)
		}
	}()
	tb.Cleanup(func() { _ = srv.Close() })
}

// podAt is the pod whose address addr is, and its instance.
func (s *standIn) podAt(ctx context.Context, addr net.Addr) (*corev1.Pod, *v1alpha1.ServiceInstance, error) {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, nil, err
	}
	pods := &corev1.PodList{}
	if err := s.cache.List(ctx, pods, client.MatchingFields{podIPIndex: host}); err != nil {
		return nil, nil, err
	}
	if len(pods.Items) != 1 {
		return nil, nil, fmt.Errorf("%d pods at %s", len(pods.Items), host)
	}
	pod := &pods.Items[0]
	inst := &v1alpha1.ServiceInstance{}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Labels[names.InstanceLabel]}
	if err := s.cache.Get(ctx, key, inst); err != nil {
		return nil, nil, fmt.Errorf("instance of pod %s: %w", pod.Name, err)
	}
	return pod, inst, nil
}

// agentCertificate is the agent certificate of the instance of the pod dialled: every agent
// answers to the same name, and the operator trusts only the instance's CA.
func (s *standIn) agentCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	_, inst, err := s.podAt(ctx, hello.Conn.LocalAddr())
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: inst.Namespace, Name: certs.AgentSecretName(inst.Name)}
	if err := s.cache.Get(ctx, key, secret); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.certs[key]; ok && c.version == secret.ResourceVersion {
		return c.cert, nil
	}
	cert, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, err
	}
	s.certs[key] = agentCert{version: secret.ResourceVersion, cert: &cert}
	return &cert, nil
}

// agentStatus is a member serving in its role: the PostgreSQL pod the lease names is the primary
// (with every other member streaming to it), a MongoDB instance's first pod is its primary.
func (s *standIn) agentStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pod, inst, err := s.podAt(ctx, ctx.Value(localAddrKey{}).(net.Addr))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	st := fwagent.Status{Ready: true}
	switch inst.Spec.Engine {
	case postgres.Name:
		st.Role, st.Position = "replica", &primary.Position{History: 1, Offset: 1 << 24}
		if s.holder(ctx, inst) == pod.Name {
			st.Role = "primary"
			st.Replicas = s.replicasOf(ctx, inst, pod.Name)
		}
	case mongodb.Name:
		st.Role = "replica"
		if workload.Ordinal(pod.Name) == 0 {
			st.Role = "primary"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// holder is the member the instance's primary Lease names.
func (s *standIn) holder(ctx context.Context, inst *v1alpha1.ServiceInstance) string {
	leases := &coordinationv1.LeaseList{}
	if err := s.cache.List(ctx, leases, client.InNamespace(inst.Namespace), client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
		return ""
	}
	for _, l := range leases.Items {
		if l.Spec.HolderIdentity != nil {
			return *l.Spec.HolderIdentity
		}
	}
	return ""
}

// replicasOf are the instance's other pods, streaming to its primary.
func (s *standIn) replicasOf(ctx context.Context, inst *v1alpha1.ServiceInstance, primaryPod string) []fwagent.ReplicaStatus {
	pods := &corev1.PodList{}
	if err := s.cache.List(ctx, pods, client.InNamespace(inst.Namespace), client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))); err != nil {
		return nil
	}
	var out []fwagent.ReplicaStatus
	for _, p := range pods.Items {
		if p.Name != primaryPod {
			out = append(out, fwagent.ReplicaStatus{Name: p.Name, State: "streaming"})
		}
	}
	return out
}

// rabbitmqNodes is /api/nodes: every node the instance wants, running.
func (s *standIn) rabbitmqNodes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, inst, err := s.podAt(ctx, ctx.Value(localAddrKey{}).(net.Addr))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	type node struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
	}
	var nodes []node
	for i := range int(inst.DesiredReplicas()) {
		nodes = append(nodes, node{Name: rabbitmq.NodeName(inst, i), Running: true})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(nodes)
}
