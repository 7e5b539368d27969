package instance_test

import (
	"fmt"
	"testing"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/test/promtest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The operator's metrics endpoint (controller-runtime's registry) serves the fleet's figures of the
// manager's instances as they change: not Ready while the pods start, Ready after.
func TestTheOperatorServesTheFleetsFigures(t *testing.T) {
	ctx, c, ns := setup(t)
	if err := c.Create(ctx, newInstance(ns, "metered")); err != nil {
		t.Fatal(err)
	}
	id := []string{"namespace=" + ns, "serviceinstance=metered", "engine=" + fakeengine.Name}
	ready := func(want float64) {
		t.Helper()
		testenv.Eventually(t, wait, func() error {
			m, err := promtest.Gather(ctrlmetrics.Registry)
			if err != nil {
				return err
			}
			if v, ok := m.Value("datafleet_instance_ready", id...); !ok || v != want {
				return fmt.Errorf("datafleet_instance_ready%v = %v (present: %v), want %v", id, v, ok, want)
			}
			return nil
		})
	}
	ready(0)
	markReady(t, c, ns, "metered")
	waitPhase(t, c, ns, "metered", v1alpha1.PhaseReady)
	ready(1)
}
