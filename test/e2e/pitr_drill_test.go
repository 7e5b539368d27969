//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// startPointInTimeDrill makes a plan of physical backups of an archiving instance, every minute
// (keeping one), with a drill every minute: its drill restores to a point in time between two
// markers it writes (issue #27). checkPointInTimeDrill follows it.
func startPointInTimeDrill(t *testing.T, inst *v1alpha1.ServiceInstance) *v1alpha1.BackupPlan {
	t.Helper()
	plan := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: "pitr", Namespace: inst.Namespace}, Spec: v1alpha1.BackupPlanSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: inst.Name}, Schedule: "* * * * *", Method: v1alpha1.BackupPhysical,
		Retention: &v1alpha1.BackupRetention{Count: ptr[int32](1)}, Drill: &v1alpha1.BackupDrill{Schedule: "* * * * *"},
	}}
	if err := env.c.Create(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	return plan
}

// checkPointInTimeDrill waits for the plan's drill to pass, with the recovery point and time it
// measured, and finds both its markers in the source (the drill checked that the restored
// instance held the first and not the second); then it stops the plan.
func checkPointInTimeDrill(t *testing.T, plan *v1alpha1.BackupPlan) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 8*time.Minute, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(plan), plan); err != nil {
			return err
		}
		d := plan.Status.LastDrill
		if d != nil && d.Result == controllers.DrillFailed {
			t.Fatalf("the point-in-time drill failed: %+v", d)
		}
		return expect(d != nil && d.Result == controllers.DrillPassed, "a point-in-time drill passed", fmt.Sprintf("%+v", d))
	})
	d := plan.Status.LastDrill
	if d.TargetTime == nil || d.RecoveryPoint == nil || d.RecoveryTime == nil || d.RecoveryTime.Duration <= 0 {
		t.Fatalf("the point-in-time drill passed without its target or measures: %+v", d)
	}
	patchPlan(t, plan, func(s *v1alpha1.BackupPlanSpec) { s.Suspend, s.Drill = true, nil })
	before, after := d.Restore+"-before", d.Restore+"-after"
	pod := plan.Spec.InstanceRef.Name + "-0"
	got := psql(t, plan.Namespace, pod, fmt.Sprintf(
		"SELECT string_agg(id || (CASE WHEN written_at < '%s' THEN ' before' ELSE ' after' END), ',' ORDER BY id) FROM datafleet.drill_markers WHERE id IN ('%s', '%s')",
		d.TargetTime.UTC().Format(time.RFC3339), before, after))
	if want := after + " after," + before + " before"; got != want {
		t.Fatalf("the source's markers: %q, want %q", got, want)
	}
	t.Logf("BACKUPS: point-in-time drill of %s: %s", d.Backup, d.Message)
	// A drill whose source was restored in place between its markers aims again (this step's
	// in-place restores may fall inside one): say when it did.
	aimedAgain, err := eventsAbout(ctx, plan.Namespace, plan.Name, "DrillAimedAgain")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range aimedAgain {
		t.Logf("BACKUPS: a point-in-time drill aimed again: %s", e.Message)
	}
	scratch := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: plan.Name + "-drill", Namespace: plan.Namespace}}
	waitGone(t, "the point-in-time drill's scratch instance", scratch)
}
