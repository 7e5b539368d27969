package instance_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// withVersions adds versions to the fake engine's catalog for one test.
func withVersions(t *testing.T, c client.Client, versions ...v1alpha1.CatalogVersion) {
	t.Helper()
	editCatalog(t, c, func(spec *v1alpha1.VersionCatalogSpec) {
		spec.Versions = append(spec.Versions, versions...)
		spec.WarningDays = 60
	})
}

// editCatalog changes the fake engine's catalog for one test and puts it back afterwards.
func editCatalog(t *testing.T, c client.Client, edit func(*v1alpha1.VersionCatalogSpec)) {
	t.Helper()
	cat := &v1alpha1.VersionCatalog{}
	if err := c.Get(t.Context(), client.ObjectKey{Name: "fake"}, cat); err != nil {
		t.Fatal(err)
	}
	orig := *cat.Spec.DeepCopy()
	edit(&cat.Spec)
	if err := c.Update(t.Context(), cat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled in cleanups.
		cat := &v1alpha1.VersionCatalog{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: "fake"}, cat); err != nil {
			t.Fatal(err)
		}
		cat.Spec = orig
		if err := c.Update(context.Background(), cat); err != nil {
			t.Error(err)
		}
	})
}

// Without the webhook (failurePolicy Ignore, or none installed) the reconciler still refuses a
// version change the catalog has no in-place path for, before any pod rolls; and a new default
// version in the catalog does not move instances that never named one.
func TestVersionChangesFollowTheCatalogPaths(t *testing.T) {
	ctx, c, ns := setup(t)
	pinned, free := newInstance(ns, "pinned"), newInstance(ns, "free")
	pinned.Spec.Version = "1"
	for _, si := range []*v1alpha1.ServiceInstance{pinned, free} {
		if err := c.Create(ctx, si); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, wait, func() error {
			_ = get(t, c, si, ns, si.Name)
			return failIf(si.Status.Version == "", "no status.version yet")
		})
	}
	// 1 -> 2 has no path in the catalog.
	_ = get(t, c, pinned, ns, "pinned")
	pinned.Spec.Version = "2"
	if err := c.Update(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "pinned", v1alpha1.PhaseFailed)
	if cond := condition(got, v1alpha1.ConditionReady); cond.Reason != "NoUpgradePath" || !strings.Contains(cond.Message, "no upgrade path 1 -> 2") {
		t.Errorf("Ready after 1 -> 2 without a path = %+v", cond)
	}
	if cond := condition(got, v1alpha1.ConditionVersionSupported); cond.Status != metav1.ConditionTrue || got.Status.Version != "1" {
		t.Errorf("the running version 1 is still supported: %+v, status.version %s", cond, got.Status.Version)
	}
	sts := &appsv1.StatefulSet{}
	_ = get(t, c, sts, ns, "pinned")
	if img := sts.Spec.Template.Spec.Containers[0].Image; img != "fake:1" {
		t.Errorf("the refused change rolled the StatefulSet to %s", img)
	}

	// The catalog gains the path 1 -> 2 and makes 1 the default: pinned moves to 2, and free, which
	// took the old default 2 at creation, stays on 2 (1 would be a downgrade).
	editCatalog(t, c, func(spec *v1alpha1.VersionCatalogSpec) {
		for i := range spec.Versions {
			v := &spec.Versions[i]
			v.Default = v.Version == "1"
			if v.Version == "1" {
				v.Upgrades = []v1alpha1.UpgradePath{{To: "2", Method: v1alpha1.UpgradeInPlace}}
			}
		}
	})
	testenv.Eventually(t, wait, func() error {
		_ = get(t, c, sts, ns, "pinned")
		img := sts.Spec.Template.Spec.Containers[0].Image
		return failIf(img != "fake:2", "pinned's StatefulSet runs %s, want fake:2 once the path exists", img)
	})
	mgr.WaitQuiet(t, wait)
	_ = get(t, c, free, ns, "free")
	_ = get(t, c, sts, ns, "free")
	if img := sts.Spec.Template.Spec.Containers[0].Image; free.Status.Version != "2" || img != "fake:2" {
		t.Errorf("a new default moved an instance without spec.version: status.version %s, image %s", free.Status.Version, img)
	}
}

// An instance on a version inside its catalog's warning window is told so, with the days left, in
// its VersionSupported condition and once in a warning event; past the sundown it keeps running
// and the condition says it is no longer supported.
func TestVersionNearingAndPastSundown(t *testing.T) {
	ctx, c, ns := setup(t)
	soon := metav1.NewTime(time.Now().Add(30*24*time.Hour + time.Hour))
	gone := metav1.NewTime(time.Now().Add(-time.Hour))
	withVersions(t, c, v1alpha1.CatalogVersion{Version: "3", Image: "fake:3", Sundown: &soon},
		v1alpha1.CatalogVersion{Version: "0", Image: "fake:0", Sundown: &gone})
	for _, name := range []string{"soon", "gone"} {
		si := newInstance(ns, name)
		si.Spec.Version = map[string]string{"soon": "3", "gone": "0"}[name]
		if err := c.Create(ctx, si); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, wait, func() error { return get(t, c, &appsv1.StatefulSet{}, ns, name) })
		markReady(t, c, ns, name)
	}

	got := waitPhase(t, c, ns, "soon", v1alpha1.PhaseReady)
	want := "version 3 reaches its sundown on " + soon.UTC().Format(time.DateOnly) + " (30 days left): plan an upgrade"
	if cond := condition(got, v1alpha1.ConditionVersionSupported); cond.Status != metav1.ConditionTrue || cond.Reason != "NearingSundown" ||
		cond.Message != want || cond.ObservedGeneration != got.Generation {
		t.Errorf("VersionSupported = %+v, want True NearingSundown %q", cond, want)
	}
	got = waitPhase(t, c, ns, "gone", v1alpha1.PhaseReady)
	if cond := condition(got, v1alpha1.ConditionVersionSupported); cond.Status != metav1.ConditionFalse || cond.Reason != "PastSundown" ||
		!strings.Contains(cond.Message, "the instance keeps running but is no longer supported") {
		t.Errorf("VersionSupported past sundown = %+v", cond)
	}

	warnings := func() map[string]int {
		events := &corev1.EventList{}
		if err := c.List(ctx, events, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning && (e.Reason == "NearingSundown" || e.Reason == "PastSundown") {
				n[e.InvolvedObject.Name+"/"+e.Reason] += max(int(e.Count), 1)
				if !strings.Contains(e.Message, "sundown") {
					t.Errorf("event %s: %q", e.Reason, e.Message)
				}
			}
		}
		return n
	}
	testenv.Eventually(t, wait, func() error {
		if n := warnings(); n["soon/NearingSundown"] != 1 || n["gone/PastSundown"] != 1 {
			return testenv.Errorf("warning events: %v", n)
		}
		return nil
	})
	// Further reconciles (a label) do not repeat the warning.
	for _, name := range []string{"soon", "gone"} {
		si := &v1alpha1.ServiceInstance{}
		_ = get(t, c, si, ns, name)
		si.Labels = map[string]string{"touched": "yes"}
		si.Spec.Parameters = map[string]string{"touched": "yes"}
		if err := c.Update(ctx, si); err != nil {
			t.Fatal(err)
		}
	}
	mgr.WaitQuiet(t, wait)
	if n := warnings(); n["soon/NearingSundown"] != 1 || n["gone/PastSundown"] != 1 {
		t.Errorf("warning events after more reconciles: %v, want one each", n)
	}
}

// A ServicePlan's sizes apply where the instance sets none; the instance's own win; a plan that
// disappears is reported, not guessed at.
func TestPlanSizesApply(t *testing.T) {
	ctx, c, ns := setup(t)
	p := &v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "fake-" + ns}, Spec: v1alpha1.ServicePlanSpec{Engine: "fake",
		Replicas: ptr.To[int32](3), StorageSize: ptr.To(quantity("7Gi")),
		Limits: &v1alpha1.PlanLimits{MaxStorageSize: ptr.To(quantity("20Gi"))}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	si := newInstance(ns, "db")
	si.Spec.Plan = p.Name
	own := newInstance(ns, "own")
	own.Spec.Plan, own.Spec.Replicas, own.Spec.Storage = p.Name, ptr.To[int32](2), &v1alpha1.StorageSpec{Size: quantity("10Gi")}
	for _, o := range []*v1alpha1.ServiceInstance{si, own} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string][2]string{"db": {"3", "7Gi"}, "own": {"2", "10Gi"}} {
		sts := &appsv1.StatefulSet{}
		testenv.Eventually(t, wait, func() error { return get(t, c, sts, ns, name) })
		if got := [2]string{strconv.Itoa(int(*sts.Spec.Replicas)), claimTemplateSize(t, c, ns, name)}; got != want {
			t.Errorf("%s: replicas and storage %v, want %v", name, got, want)
		}
	}
	si = &v1alpha1.ServiceInstance{}
	_ = get(t, c, si, ns, "db")
	if si.Spec.Replicas != nil || si.Spec.Storage != nil {
		t.Errorf("the plan's sizes were written into the instance's spec: %+v", si.Spec)
	}

	if err := c.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, ns, "db", v1alpha1.PhaseFailed)
	if cond := condition(got, v1alpha1.ConditionReady); cond.Reason != "PlanNotFound" || cond.Message != `no ServicePlan named "`+p.Name+`" exists` {
		t.Errorf("Ready after the plan went = %+v", cond)
	}
}

// failIf is an Eventually condition: the error while bad holds.
func failIf(bad bool, format string, args ...any) error {
	if bad {
		return testenv.Errorf(format, args...)
	}
	return nil
}
