package instance

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
)

type supervised struct{ fakeengine.Engine }

func (supervised) Supervise(context.Context, *engine.Supervision) error { return nil }

// A Supervisor's pods reconcile its instances without the engine asking (their readiness and
// roles are what it acts on); an engine that does not supervise does not watch pods.
func TestSupervisorsWatchPods(t *testing.T) {
	watchesPods := func(e engine.Engine) bool {
		for _, w := range watches(e) {
			if _, ok := w.Type.(*corev1.Pod); ok {
				return true
			}
		}
		return false
	}
	if !watchesPods(supervised{}) {
		t.Error("a Supervisor's pods are not watched")
	}
	if watchesPods(fakeengine.Engine{}) {
		t.Error("an engine that does not supervise watches pods")
	}
}
