//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testRolloutWaves: a catalog image patch across six instances whose maintenance windows are open
// restarts them in waves, as the chart's rollout says (here canaries 1, maxConcurrent 2): the
// canary alone, then never more than two at once, every one onto the new image; a seventh,
// paused instance is not restarted at all. The test samples every pod four times a second and
// logs the timeline.
func testRolloutWaves(t *testing.T) {
	ctx := context.Background()
	helmUpgrade(t, "--set", "rollout.canaries=1", "--set", "rollout.maxConcurrent=2")
	ns := testNamespace(t, "waves")
	open := &v1alpha1.MaintenanceWindow{StartTime: "00:00", Duration: metav1.Duration{Duration: 24 * time.Hour}}
	var insts []*v1alpha1.ServiceInstance
	for i := range 7 {
		name := fmt.Sprintf("wave-%d", i)
		if i == 6 {
			name = "wave-paused"
		}
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", MaintenanceWindow: open, DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
		createInstance(t, inst)
		insts = append(insts, inst)
	}
	uids := map[string]string{}
	for _, inst := range insts {
		waitInstanceReady(t, inst)
		uids[inst.Name] = podUID(t, ns, inst.Name+"-0")
	}
	paused := insts[6]
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(paused), paused); err != nil {
			return err
		}
		paused.Spec.Paused = true
		return env.c.Update(ctx, paused)
	}); err != nil {
		t.Fatal(err)
	}
	waitInstance(t, paused, waitTimeout, "the instance says it is paused", func() (bool, string) {
		return meta.IsStatusConditionTrue(paused.Status.Conditions, v1alpha1.ConditionPaused), fmt.Sprintf("conditions %+v", paused.Status.Conditions)
	})

	// The platform team points version 15 at another image (whichever it does not name now).
	var target, was string
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cat := &v1alpha1.VersionCatalog{}
		if err := env.c.Get(ctx, client.ObjectKey{Name: "postgres"}, cat); err != nil {
			return err
		}
		for i := range cat.Spec.Versions {
			if v := &cat.Spec.Versions[i]; v.Version == "15" {
				was, target = v.Image, env.images["postgres-15"]
				if was == target {
					target = env.images["postgres-15-rebuild"]
				}
				v.Image = target
			}
		}
		return env.c.Update(ctx, cat)
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	type span struct{ began, ended time.Duration }
	spans := map[string]*span{}
	most := 0
	testenv.Eventually(t, 10*time.Minute, func() error {
		now := time.Since(start)
		restarting, done := []string{}, 0
		for _, inst := range insts[:6] {
			state := podState(t, ns, inst.Name+"-0", uids[inst.Name], target)
			s := spans[inst.Name]
			switch state {
			case "restarting":
				restarting = append(restarting, inst.Name)
				if s == nil {
					spans[inst.Name] = &span{began: now}
				}
			case "done":
				done++
				if s == nil {
					s = &span{began: now}
					spans[inst.Name] = s
				}
				if s.ended == 0 {
					s.ended = now
				}
			}
		}
		if len(restarting) > most {
			most = len(restarting)
			t.Logf("WAVES: %s restarting at once at +%s", strings.Join(restarting, ", "), now.Round(100*time.Millisecond))
		}
		if len(restarting) > 2 {
			t.Fatalf("%d instances restarting at once (%v), the rollout allows 2", len(restarting), restarting)
		}
		time.Sleep(250 * time.Millisecond)
		return expect(done == 6, "all six instances run the catalog's new image", fmt.Sprintf("%d done, restarting %v", done, restarting))
	})
	names := make([]string, 0, len(spans))
	for n := range spans {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return spans[names[i]].began < spans[names[j]].began })
	for _, n := range names {
		t.Logf("WAVES: %s restarted from +%s to +%s", n, spans[n].began.Round(100*time.Millisecond), spans[n].ended.Round(100*time.Millisecond))
	}
	fmt.Printf("ROLLOUT WAVES (6 instances, canaries 1, maxConcurrent 2): at most %d at once, all done in %s\n", most, time.Since(start).Round(time.Second))
	if canary, second := spans[names[0]], spans[names[1]]; second.began < canary.ended {
		t.Errorf("%s began restarting at +%s, before the canary %s was done (+%s)", names[1], second.began, names[0], canary.ended)
	}
	if state := podState(t, ns, "wave-paused-0", uids["wave-paused"], target); state != "untouched" {
		t.Errorf("the paused instance's pod is %s, want untouched", state)
	}
	helmUpgrade(t, "--set", "rollout.maxConcurrent=5")
	t.Logf("WAVES: version 15 went from %s to %s", was, target)
}

// podState is "untouched" while the pod with uid runs, "done" once a ready pod runs image, and
// "restarting" in between.
func podState(t *testing.T, ns, name, uid, image string) string {
	t.Helper()
	var p corev1.Pod
	err := env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p)
	switch {
	case apierrors.IsNotFound(err):
		return "restarting"
	case err != nil:
		t.Fatal(err)
	}
	ready := false
	for _, c := range p.Status.Conditions {
		ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
	}
	running := ""
	for _, c := range p.Spec.Containers {
		if c.Name == "postgres" {
			running = c.Image
		}
	}
	switch {
	case string(p.UID) == uid && p.DeletionTimestamp.IsZero():
		return "untouched"
	case string(p.UID) != uid && ready && running == image:
		return "done"
	}
	return "restarting"
}
