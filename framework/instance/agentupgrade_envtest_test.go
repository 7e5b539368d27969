package instance_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// agentPods is the fake engine with its pods run by the agent, as every real engine's are
// (workload.AgentPod): an operator upgrade changes their template's agent image and nothing else.
type agentPods struct{ fakeengine.Engine }

const agentPodsName = "agentpods"

func (agentPods) Name() string { return agentPodsName }

func (agentPods) Render(in engine.RenderInput) ([]client.Object, error) {
	if err := in.CheckAgentImage(agentPodsName); err != nil {
		return nil, err
	}
	inst := in.Instance
	var annotations map[string]string
	if m := inst.Spec.Parameters["mode"]; m != "" {
		annotations = map[string]string{"example.com/mode": m} // a parameter read at start: a restart
	}
	pod := workload.AgentPod{Engine: agentPodsName, Instance: inst, Image: in.Release.Image, AgentImage: in.AgentImage, UID: 999}.Spec()
	return []client.Object{workload.StatefulSet(agentPodsName, inst, workload.HeadlessName(inst), annotations, pod,
		workload.DataClaim(agentPodsName, inst, "1Gi"))}, nil
}

func agentImage(t *testing.T, c client.Client, ns, name string) (string, *appsv1.StatefulSet) {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := get(t, c, sts, ns, name); err != nil {
		t.Fatal(err)
	}
	return workload.AgentInit(&sts.Spec.Template.Spec).Image, sts
}

// An operator upgrade (a manager with a new image) restarts no pod: the StatefulSet keeps the
// agent its pods run, untouched, and the instance lists the new agent as a pending restart. The
// next restart the instance's own spec asks for brings the new agent along, and the pending
// restart is gone.
//
// It has an API server of its own: the package's manager would refuse the instances of an engine
// it does not know (one operator per cluster).
func TestOperatorUpgradeKeepsThePodsAgentUntilTheirNextRestart(t *testing.T) {
	api := testenv.Start(t)
	ctx, c, ns := context.Background(), api.Client, "apps"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: agentPodsName},
		Spec: v1alpha1.VersionCatalogSpec{Engine: agentPodsName, Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "engine:1", Default: true}}}}); err != nil {
		t.Fatal(err)
	}
	start := func(image string) *testenv.Manager {
		m, err := api.ManagerWith([]engine.Engine{agentPods{}}, operator.Options{MaxConcurrentReconciles: 2, AgentImage: image})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := start("operator:1")
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: agentPodsName, Parameters: map[string]string{"mode": "a"}}}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "ledger")
	waitPhase(t, c, ns, "ledger", v1alpha1.PhaseReady)
	image, sts := agentImage(t, c, ns, "ledger")
	if image != "operator:1" {
		t.Fatalf("agent image %q, want operator:1", image)
	}
	before.Stop()

	after := start("operator:2")
	defer after.Stop()
	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, "ledger"); err != nil {
			return err
		}
		p := si.Status.PendingRestarts
		if len(p) != 1 || p[0].Reason != instance.ReasonAgentUpgrade || !strings.Contains(p[0].Message, "operator:1") || !strings.Contains(p[0].Message, "operator:2") {
			return fmt.Errorf("pending restarts %+v", p)
		}
		if cond := condition(si, v1alpha1.ConditionRestartPending); cond.Status != metav1.ConditionTrue || cond.Reason != instance.ReasonAgentUpgrade {
			return fmt.Errorf("RestartPending %+v", cond)
		}
		return nil
	})
	after.WaitQuiet(t, time.Minute)
	if image, now := agentImage(t, c, ns, "ledger"); image != "operator:1" || now.ResourceVersion != sts.ResourceVersion {
		t.Fatalf("the upgrade changed the StatefulSet (agent image %q, resourceVersion %s → %s)", image, sts.ResourceVersion, now.ResourceVersion)
	}
	if si.Status.Phase != v1alpha1.PhaseReady {
		t.Fatalf("phase %s after the upgrade", si.Status.Phase)
	}

	// The instance's own change restarts the pods: the new agent comes with it.
	si.Spec.Parameters["mode"] = "b"
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		image, sts := agentImage(t, c, ns, "ledger")
		if image != "operator:2" || sts.Spec.Template.Annotations["example.com/mode"] != "b" {
			return fmt.Errorf("agent image %q, annotations %v", image, sts.Spec.Template.Annotations)
		}
		if err := get(t, c, si, ns, "ledger"); err != nil {
			return err
		}
		if len(si.Status.PendingRestarts) != 0 || condition(si, v1alpha1.ConditionRestartPending).Type != "" {
			return fmt.Errorf("still pending: %+v", si.Status.PendingRestarts)
		}
		return nil
	})
}
