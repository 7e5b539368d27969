package instance_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/rollout"
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
func TestOperatorUpgradeKeepsThePodsAgentUntilTheirNextRestart(t *testing.T) {
	u := upgrade(t, nil)
	c, ns := u.c, u.ns
	after := u.start(t, "operator:2", nil)
	defer after.Stop()
	si := u.waitPending(t, "with the next restart the spec asks for (no maintenance window is set)")
	after.WaitQuiet(t, time.Minute)
	sts := u.sts
	if image, now := agentImage(t, c, ns, "ledger"); image != "operator:1" || now.ResourceVersion != sts.ResourceVersion {
		t.Fatalf("the upgrade changed the StatefulSet (agent image %q, resourceVersion %s → %s)", image, sts.ResourceVersion, now.ResourceVersion)
	}
	if si.Status.Phase != v1alpha1.PhaseReady {
		t.Fatalf("phase %s after the upgrade", si.Status.Phase)
	}

	// The instance's own change restarts the pods: the new agent comes with it.
	si.Spec.Parameters["mode"] = "b"
	if err := c.Update(context.Background(), si); err != nil {
		t.Fatal(err)
	}
	u.waitApplied(t, "b")
}

// With a maintenance window, the new agent waits for it: outside it nothing changes and the
// instance says when it opens; inside it the pods get the new agent (and restart, one at a time,
// as the supervisor rolls any template change).
func TestOperatorUpgradeAppliesThePendingAgentInTheMaintenanceWindow(t *testing.T) {
	window := &v1alpha1.MaintenanceWindow{Days: []string{"Sat"}, StartTime: "23:00", Duration: metav1.Duration{Duration: 2 * time.Hour}}
	u := upgrade(t, window)
	wednesday := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	outside := u.start(t, "operator:2", clocktesting.NewFakePassiveClock(wednesday))
	u.waitPending(t, "with the next restart the spec asks for, or in the instance's maintenance window at 2026-12-05T23:00:00Z")
	outside.WaitQuiet(t, time.Minute)
	if image, now := agentImage(t, u.c, u.ns, "ledger"); image != "operator:1" || now.ResourceVersion != u.sts.ResourceVersion {
		t.Fatalf("outside the window the StatefulSet changed (agent image %q)", image)
	}
	outside.Stop()

	saturdayNight := time.Date(2026, 12, 5, 23, 30, 0, 0, time.UTC)
	inside := u.start(t, "operator:2", clocktesting.NewFakePassiveClock(saturdayNight))
	defer inside.Stop()
	u.waitApplied(t, "a")
	// The pods roll for a restart the platform scheduled: the instance is Updating, not Degraded,
	// until they are Ready again.
	inside.WaitQuiet(t, time.Minute)
	if si := waitPhase(t, u.c, u.ns, "ledger", v1alpha1.PhaseUpdating); condition(si, v1alpha1.ConditionDegraded).Status == metav1.ConditionTrue {
		t.Fatalf("Degraded while the held restart rolls: %+v", si.Status.Conditions)
	}
	markReady(t, u.c, u.ns, "ledger")
	waitPhase(t, u.c, u.ns, "ledger", v1alpha1.PhaseReady)
}

// A catalog edit of the image of the instance's version (a patch release) is held like a new agent:
// the pods keep their image until a restart the spec asks for, which brings it along.
func TestCatalogImagePatchWaitsForTheNextRestart(t *testing.T) {
	u := upgrade(t, nil)
	m := u.start(t, "operator:1", nil)
	defer m.Stop()
	ctx := context.Background()
	cat := &v1alpha1.VersionCatalog{}
	if err := u.c.Get(ctx, client.ObjectKey{Name: agentPodsName}, cat); err != nil {
		t.Fatal(err)
	}
	cat.Spec.Versions[0].Image = "engine:1-patch1"
	if err := u.c.Update(ctx, cat); err != nil {
		t.Fatal(err)
	}
	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, u.c, si, u.ns, "ledger"); err != nil {
			return err
		}
		p := si.Status.PendingRestarts
		if len(p) != 1 || p[0].Reason != instance.ReasonImagePatch ||
			p[0].Message != "the pods of ledger run engine:1; the catalog's engine:1-patch1 for version 1 comes with the next restart the spec asks for (no maintenance window is set)" {
			return fmt.Errorf("pending %+v", p)
		}
		if si.Status.Image != "engine:1" {
			return fmt.Errorf("status.image %s while the pods run engine:1", si.Status.Image)
		}
		return nil
	})
	m.WaitQuiet(t, time.Minute)
	sts := &appsv1.StatefulSet{}
	if err := get(t, u.c, sts, u.ns, "ledger"); err != nil || sts.ResourceVersion != u.sts.ResourceVersion {
		t.Fatalf("the catalog edit changed the StatefulSet (%v)", err)
	}
	si.Spec.Parameters["mode"] = "b"
	if err := u.c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, u.c, sts, u.ns, "ledger"); err != nil {
			return err
		}
		if image := sts.Spec.Template.Spec.Containers[0].Image; image != "engine:1-patch1" {
			return fmt.Errorf("engine image %s", image)
		}
		if err := get(t, u.c, si, u.ns, "ledger"); err != nil || len(si.Status.PendingRestarts) != 0 || si.Status.Image != "engine:1-patch1" {
			return fmt.Errorf("pending %+v, status.image %s (%v)", si.Status.PendingRestarts, si.Status.Image, err)
		}
		return nil
	})
}

// A release that renders the agent's init container differently (with the engine container's
// resources, which releases before spec.scheduling left out) restarts no pod either: the instance
// lists AgentResources, and the next restart its spec asks for brings the new rendering along.
func TestOperatorUpgradeHoldsTheInitContainersNewResources(t *testing.T) {
	u := upgrade(t, nil)
	ctx, c, ns := context.Background(), u.c, u.ns
	// What the previous release made of an instance with requests equal to limits: the engine
	// container has them, the init container nothing.
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	si := &v1alpha1.ServiceInstance{}
	if err := get(t, c, si, ns, "ledger"); err != nil {
		t.Fatal(err)
	}
	si.Spec.Resources = corev1.ResourceRequirements{Requests: res, Limits: res}
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	sts := u.sts.DeepCopy()
	sts.Spec.Template.Spec.Containers[0].Resources = si.Spec.Resources
	if err := c.Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	markReady(t, c, ns, "ledger")
	if err := get(t, c, sts, ns, "ledger"); err != nil {
		t.Fatal(err)
	}

	m := u.start(t, "operator:1", nil)
	defer m.Stop()
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, si, ns, "ledger"); err != nil {
			return err
		}
		p := si.Status.PendingRestarts
		if len(p) != 1 || p[0].Reason != instance.ReasonAgentResources ||
			p[0].Message != "the agent's init container in the pods of ledger gets the engine container's resources (the Guaranteed QoS class needs them on every container) with the next restart the spec asks for (no maintenance window is set)" {
			return fmt.Errorf("pending %+v", p)
		}
		return nil
	})
	m.WaitQuiet(t, time.Minute)
	now := &appsv1.StatefulSet{}
	if err := get(t, c, now, ns, "ledger"); err != nil || now.ResourceVersion != sts.ResourceVersion {
		t.Fatalf("the new rendering changed the StatefulSet, which would restart its pods (%v)", err)
	}

	si.Spec.Parameters["mode"] = "b"
	if err := c.Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, c, now, ns, "ledger"); err != nil {
			return err
		}
		if init := workload.AgentInit(&now.Spec.Template.Spec); !apiequality.Semantic.DeepEqual(init.Resources, si.Spec.Resources) {
			return fmt.Errorf("init container resources %+v after the restart the spec asked for", init.Resources)
		}
		if err := get(t, c, si, ns, "ledger"); err != nil || len(si.Status.PendingRestarts) != 0 {
			return fmt.Errorf("pending %+v (%v)", si.Status.PendingRestarts, err)
		}
		return nil
	})
}

// In a window open to all, the fleet takes the new agent in waves: one canary first, then at most
// two at once, each wave after the one before is Ready again; meanwhile the others say why they
// wait.
func TestOperatorUpgradeRestartsTheFleetInWaves(t *testing.T) {
	always := &v1alpha1.MaintenanceWindow{StartTime: "00:00", Duration: metav1.Duration{Duration: 24 * time.Hour}}
	fleet := []string{"a", "b", "c", "d"}
	u := upgrade(t, always, fleet...)
	m := u.startWith(t, operator.Options{AgentImage: "operator:2", Rollout: &rollout.Policy{Canaries: 1, MaxConcurrent: 2, Poll: time.Second}})
	defer m.Stop()

	wave := func(want int, reason string) []string {
		t.Helper()
		var done, waiting []string
		testenv.Eventually(t, wait, func() error {
			if done, waiting = u.upgradedNow(t, "operator:2", fleet...); len(done) != want {
				return fmt.Errorf("%d upgraded (%v), want %d", len(done), done, want)
			}
			for _, n := range waiting {
				si := &v1alpha1.ServiceInstance{}
				if err := get(t, u.c, si, u.ns, n); err != nil {
					return err
				}
				if p := si.Status.PendingRestarts; len(p) != 1 || !strings.Contains(p[0].Message, reason) {
					return fmt.Errorf("%s: pending %+v", n, p)
				}
			}
			return nil
		})
		m.WaitQuiet(t, time.Minute)
		if again, _ := u.upgradedNow(t, "operator:2", fleet...); len(again) != want {
			t.Fatalf("the wave grew while the one before was restarting: %v, want %d", again, want)
		}
		return done
	}
	canary := wave(1, "once the fleet's rollout admits them (paced: 1 canaries restart one at a time first)")
	markReady(t, u.c, u.ns, canary[0])
	second := wave(3, "(paced: at most 2 instances restart at once)")
	for _, n := range second {
		if n != canary[0] {
			markReady(t, u.c, u.ns, n)
			break
		}
	}
	wave(4, "")
}

// upgraded is an instance created by the operator at operator:1 and Ready, on an API server of its
// own: the package's manager would refuse the instances of an engine it does not know (one
// operator per cluster).
type upgraded struct {
	api *testenv.Env
	c   client.Client
	ns  string
	sts *appsv1.StatefulSet
}

func upgrade(t *testing.T, window *v1alpha1.MaintenanceWindow, names ...string) *upgraded {
	t.Helper()
	api := testenv.Start(t)
	u := &upgraded{api: api, c: api.Client, ns: "apps"}
	ctx := context.Background()
	if err := u.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.ns}}); err != nil {
		t.Fatal(err)
	}
	if err := u.c.Create(ctx, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: agentPodsName},
		Spec: v1alpha1.VersionCatalogSpec{Engine: agentPodsName, Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "engine:1", Default: true}}}}); err != nil {
		t.Fatal(err)
	}
	before := u.start(t, "operator:1", nil)
	defer before.Stop()
	if len(names) == 0 {
		names = []string{"ledger"}
	}
	for _, name := range names {
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: u.ns, Name: name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: agentPodsName, Parameters: map[string]string{"mode": "a"}, MaintenanceWindow: window}}
		if err := u.c.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		markReady(t, u.c, u.ns, name)
		waitPhase(t, u.c, u.ns, name, v1alpha1.PhaseReady)
	}
	var image string
	if image, u.sts = agentImage(t, u.c, u.ns, names[0]); image != "operator:1" {
		t.Fatalf("agent image %q, want operator:1", image)
	}
	return u
}

// start runs the operator at image, with clk as the instance controller's clock (nil: the real one).
func (u *upgraded) start(t *testing.T, image string, clk clock.PassiveClock) *testenv.Manager {
	t.Helper()
	return u.startWith(t, operator.Options{AgentImage: image, Clock: clk})
}

func (u *upgraded) startWith(t *testing.T, opts operator.Options) *testenv.Manager {
	t.Helper()
	opts.MaxConcurrentReconciles = 2
	m, err := u.api.ManagerWith([]engine.Engine{agentPods{}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// upgradedNow lists the instances whose pods' template carries agent image, and the others.
func (u *upgraded) upgradedNow(t *testing.T, image string, names ...string) (done, waiting []string) {
	t.Helper()
	for _, n := range names {
		if got, _ := agentImage(t, u.c, u.ns, n); got == image {
			done = append(done, n)
		} else {
			waiting = append(waiting, n)
		}
	}
	return done, waiting
}

// waitPending waits for the instance to list the new agent as pending, saying when it comes.
func (u *upgraded) waitPending(t *testing.T, when string) *v1alpha1.ServiceInstance {
	t.Helper()
	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, wait, func() error {
		if err := get(t, u.c, si, u.ns, "ledger"); err != nil {
			return err
		}
		p := si.Status.PendingRestarts
		if len(p) != 1 || p[0].Reason != instance.ReasonAgentUpgrade || !strings.Contains(p[0].Message, "from operator:1; the agent from operator:2 comes "+when) {
			return fmt.Errorf("pending restarts %+v", p)
		}
		if cond := condition(si, v1alpha1.ConditionRestartPending); cond.Status != metav1.ConditionTrue || cond.Reason != instance.ReasonAgentUpgrade {
			return fmt.Errorf("RestartPending %+v", cond)
		}
		return nil
	})
	return si
}

// waitApplied waits for the pods' template to carry the new agent (and mode), and nothing pending.
func (u *upgraded) waitApplied(t *testing.T, mode string) {
	t.Helper()
	si := &v1alpha1.ServiceInstance{}
	testenv.Eventually(t, wait, func() error {
		image, sts := agentImage(t, u.c, u.ns, "ledger")
		if image != "operator:2" || sts.Spec.Template.Annotations["example.com/mode"] != mode {
			return fmt.Errorf("agent image %q, annotations %v", image, sts.Spec.Template.Annotations)
		}
		if err := get(t, u.c, si, u.ns, "ledger"); err != nil {
			return err
		}
		if len(si.Status.PendingRestarts) != 0 || condition(si, v1alpha1.ConditionRestartPending).Type != "" {
			return fmt.Errorf("still pending: %+v", si.Status.PendingRestarts)
		}
		return nil
	})
}
