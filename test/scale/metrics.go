package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// scrape is every sample a Prometheus endpoint serves whose metric name is name, by its labels
// ("" for none): `{controller="x",name="x"}`, read within timeout.
func scrape(c *http.Client, url, name string, timeout time.Duration) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !strings.HasPrefix(f[0], name) {
			continue
		}
		labels := strings.TrimPrefix(f[0], name)
		if labels != "" && !strings.HasPrefix(labels, "{") {
			continue // another metric whose name begins with this one
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, err
		}
		out[labels] = v
	}
	return out, sc.Err()
}

// leaseCalls are the requests the API server has answered on Leases since it started, reads (get,
// list) and writes: in the harness almost all of them the PostgreSQL agents' (the operator
// watches Leases through its cache).
type leaseCalls struct{ reads, writes float64 }

func (f *fleet) leaseCalls(tb testing.TB) leaseCalls {
	tb.Helper()
	c, err := rest.HTTPClientFor(f.cp.env.Config)
	if err != nil {
		tb.Fatal(err)
	}
	// A busy API server's metrics (every request histogram) take seconds to serve.
	s, err := scrape(c, strings.TrimSuffix(f.cp.env.Config.Host, "/")+"/metrics", "apiserver_request_total", time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	var n leaseCalls
	for labels, v := range s {
		if !strings.Contains(labels, `resource="leases"`) {
			continue
		}
		switch {
		case strings.Contains(labels, `verb="GET"`), strings.Contains(labels, `verb="LIST"`):
			n.reads += v
		case strings.Contains(labels, `verb="WATCH"`):
		default:
			n.writes += v
		}
	}
	return n
}
