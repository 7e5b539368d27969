package rabbitmq

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/test/promtest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// scrapeUntil scrapes n's agent as the fleet's Prometheus does (TLS, the scrape token) until check
// accepts what it serves, and returns that.
func scrapeUntil(t *testing.T, c *localCluster, n *localNode, check func(promtest.Families) error) promtest.Families {
	t.Helper()
	var served promtest.Families
	testenv.Eventually(t, time.Minute, func() error {
		s, err := c.agents.Scrape(context.Background(), n.metrics, scrapeToken)
		if err != nil {
			return err
		}
		if err := check(s); err != nil {
			return fmt.Errorf("%s: %w; served:\n%s", n.name, err, s)
		}
		served = s
		return nil
	})
	return served
}

// wantValues checks each series' value; a series is its name and label=value pairs.
func wantValues(want map[string]float64, labels map[string][]string) func(promtest.Families) error {
	return func(s promtest.Families) error {
		for name, v := range want {
			if got, ok := s.Value(name, labels[name]...); !ok || got != v {
				return fmt.Errorf("%s%v = %v (present: %v), want %v", name, labels[name], got, ok, v)
			}
		}
		return nil
	}
}

// brokerFigures checks that the broker's own figures (rabbitmq_prometheus, relayed by the agent)
// are served.
func brokerFigures(s promtest.Families) error {
	if v, ok := s.Value("datafleet_member_exporter_up"); !ok || v != 1 {
		return fmt.Errorf("the plugin's figures are not relayed (datafleet_member_exporter_up = %v, %v)", v, ok)
	}
	for _, name := range []string{"rabbitmq_queues", "rabbitmq_connections", "rabbitmq_identity_info", "erlang_vm_memory_bytes_total"} {
		if len(s.Series(name)) == 0 {
			return fmt.Errorf("no %s", name)
		}
	}
	return nil
}

// listening is every local address a TCP socket listens on at port, as the kernel says
// (/proc/net/tcp and tcp6).
func listening(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // LISTEN
				continue
			}
			hexIP, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
				continue
			}
			raw, err := hex.DecodeString(hexIP)
			if err != nil {
				t.Fatal(err)
			}
			// The kernel prints each 32-bit word in host order (little-endian here).
			for i := 0; i+4 <= len(raw); i += 4 {
				slices.Reverse(raw[i : i+4])
			}
			addrs = append(addrs, net.IP(raw).String())
		}
	}
	return addrs
}
