package controllers

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// bk is a backup that finished minutesAgo before t0.
func bk(name string, phase v1alpha1.BackupPhase, minutesAgo int, hold bool) v1alpha1.Backup {
	t := metav1.NewTime(t0.Add(-time.Duration(minutesAgo) * time.Minute))
	return v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BackupSpec{Hold: hold},
		Status: v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: phase, StartTime: &t, CompletionTime: &t}}}
}

func TestPrune(t *testing.T) {
	count := func(n int32) *v1alpha1.BackupRetention { return &v1alpha1.BackupRetention{Count: ptr.To(n)} }
	age := func(d time.Duration) *v1alpha1.BackupRetention {
		return &v1alpha1.BackupRetention{MaxAge: &metav1.Duration{Duration: d}}
	}
	six := []v1alpha1.Backup{
		bk("b1", v1alpha1.BackupCompleted, 6, false), bk("b2", v1alpha1.BackupCompleted, 5, false),
		bk("b3", v1alpha1.BackupCompleted, 4, false), bk("b4", v1alpha1.BackupCompleted, 3, false),
		bk("b5", v1alpha1.BackupCompleted, 2, false), bk("b6", v1alpha1.BackupCompleted, 1, false),
	}
	for _, c := range []struct {
		name    string
		backups []v1alpha1.Backup
		r       *v1alpha1.BackupRetention
		want    []string
	}{
		{"count 3 of 6 keeps the 3 newest", six, count(3), []string{"b1", "b2", "b3"}},
		{"age keeps those younger", six, age(150 * time.Second), []string{"b1", "b2", "b3", "b4"}},
		{"both limits apply", six, &v1alpha1.BackupRetention{Count: ptr.To[int32](4), MaxAge: &metav1.Duration{Duration: 150 * time.Second}},
			[]string{"b1", "b2", "b3", "b4"}},
		{"the only good backup is kept however old", []v1alpha1.Backup{
			bk("old", v1alpha1.BackupCompleted, 10000, false), bk("f1", v1alpha1.BackupFailed, 5, false), bk("f2", v1alpha1.BackupFailed, 1, false),
		}, age(time.Hour), nil},
		{"the newest good backup is kept even when held ones fill the count", []v1alpha1.Backup{
			bk("h1", v1alpha1.BackupCompleted, 3, true), bk("h2", v1alpha1.BackupCompleted, 2, true), bk("new", v1alpha1.BackupCompleted, 1, false),
		}, count(1), nil},
		{"held backups are never pruned and do not count", []v1alpha1.Backup{
			bk("held", v1alpha1.BackupCompleted, 100, true), bk("a", v1alpha1.BackupCompleted, 3, false),
			bk("b", v1alpha1.BackupCompleted, 2, false), bk("c", v1alpha1.BackupCompleted, 1, false),
		}, count(2), []string{"a"}},
		{"a failed backup goes once a newer one completed", []v1alpha1.Backup{
			bk("f-old", v1alpha1.BackupFailed, 3, false), bk("ok", v1alpha1.BackupCompleted, 2, false), bk("f-new", v1alpha1.BackupFailed, 1, false),
			{ObjectMeta: metav1.ObjectMeta{Name: "running"}, Status: v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupRunning}}},
		}, count(5), []string{"f-old"}},
		{"no retention prunes only superseded failures", six, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Prune(c.backups, c.r, t0)
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("pruned %v, want %v", got, c.want)
			}
		})
	}
}

// A plan looks again when the next kept backup expires: with a daily schedule and a maxAge of
// 90 minutes it would otherwise prune a day late, and a suspended plan never.
func TestUntilExpiry(t *testing.T) {
	age := &v1alpha1.BackupRetention{MaxAge: &metav1.Duration{Duration: 90 * time.Minute}}
	for _, c := range []struct {
		name    string
		backups []v1alpha1.Backup
		r       *v1alpha1.BackupRetention
		want    time.Duration
	}{
		{"the oldest kept backup expires first", []v1alpha1.Backup{
			bk("a", v1alpha1.BackupCompleted, 60, false), bk("b", v1alpha1.BackupCompleted, 30, false), bk("c", v1alpha1.BackupCompleted, 10, false),
		}, age, 30 * time.Minute},
		{"an expired one (pruned now) and the newest (kept at any age) are not waited for", []v1alpha1.Backup{
			bk("gone", v1alpha1.BackupCompleted, 200, false), bk("old", v1alpha1.BackupCompleted, 100, false),
		}, age, 0},
		{"held and unfinished backups do not expire", []v1alpha1.Backup{
			bk("held", v1alpha1.BackupCompleted, 80, true), bk("failed", v1alpha1.BackupFailed, 70, false), bk("new", v1alpha1.BackupCompleted, 1, false),
		}, age, 0},
		{"a count alone never expires", []v1alpha1.Backup{
			bk("a", v1alpha1.BackupCompleted, 60, false), bk("b", v1alpha1.BackupCompleted, 30, false),
		}, &v1alpha1.BackupRetention{Count: ptr.To[int32](5)}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := UntilExpiry(c.backups, c.r, t0); got != c.want {
				t.Fatalf("UntilExpiry = %s, want %s", got, c.want)
			}
		})
	}
}
