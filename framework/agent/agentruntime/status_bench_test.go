package agentruntime_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
)

// What mutual TLS costs the operator per status read (a new connection each time, as the
// operator reads thousands of agents now and then): compare
//
//	go test -run '^$' -bench BenchmarkStatus -benchmem ./framework/agent/agentruntime/
//
// the ratio of mtls to clear is the cost per probe of a supervised pod.
func BenchmarkStatus(b *testing.B) {
	inst := agenttest.New(b)
	// An agent from before mutual TLS: the same status, in clear, to anyone.
	clear := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode((&engine{}).Status(r.Context()))
	}))
	b.Cleanup(clear.Close)
	cfg, err := agentruntime.ServerTLS(inst.Dir)
	if err != nil {
		b.Fatal(err)
	}
	secured := httptest.NewUnstartedServer(agentruntime.Handler(&engine{}))
	secured.TLS = cfg
	secured.StartTLS()
	b.Cleanup(secured.Close)
	legacy := inst.Operator
	legacy.Address = func(*corev1.Pod) string { return strings.TrimPrefix(clear.URL, "http://") }
	for name, conn := range map[string]fwagent.Conn{
		"clear": legacy.Pod(&corev1.Pod{}),
		"mtls":  inst.At(strings.TrimPrefix(secured.URL, "https://")),
	} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := conn.Status(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
