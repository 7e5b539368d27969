package fleet

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// registered serves the fleet's figures on controller-runtime's registry, which the manager's
// metrics endpoint exposes. The registry is the process's and an unchecked collector cannot be
// unregistered, so one is registered once and reads from the latest running manager (a process
// runs one; tests start several, some at once).
var registered struct {
	once sync.Once
	mu   sync.Mutex
	live []*Collector
}

type latest struct{}

func (latest) Describe(chan<- *prometheus.Desc) {}

func (latest) Collect(ch chan<- prometheus.Metric) {
	registered.mu.Lock()
	var c *Collector
	if n := len(registered.live); n > 0 {
		c = registered.live[n-1]
	}
	registered.mu.Unlock()
	if c != nil {
		c.Collect(ch)
	}
}

// Register serves the figures of the fleet that r (a manager's cache) holds on the manager's
// metrics endpoint, until the returned function is called (when the manager stops).
func Register(r client.Reader) (unregister func()) {
	registered.once.Do(func() { ctrlmetrics.Registry.MustRegister(latest{}) })
	c := &Collector{Reader: r}
	registered.mu.Lock()
	defer registered.mu.Unlock()
	registered.live = append(registered.live, c)
	return func() {
		registered.mu.Lock()
		defer registered.mu.Unlock()
		registered.live = slices.DeleteFunc(registered.live, func(x *Collector) bool { return x == c })
	}
}
