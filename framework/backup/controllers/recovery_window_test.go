package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// A point-in-time target outside the source's recoverable window is refused before anything is
// made, except one past the window's end while the source still archives: that one waits.
func TestOutsideWindow(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	window := &v1alpha1.RecoverableWindow{From: metav1.NewTime(now.Add(-time.Hour)), To: metav1.NewTime(now.Add(-10 * time.Minute))}
	archiving := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:   v1alpha1.ServiceInstanceSpec{Backup: &v1alpha1.InstanceBackupSpec{Continuous: &v1alpha1.ContinuousArchiving{}}},
		Status: v1alpha1.ServiceInstanceStatus{RecoverableWindow: window}}
	stopped := archiving.DeepCopy()
	stopped.Spec.Backup.Continuous = nil
	deleting := archiving.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	noWindow := stopped.DeepCopy()
	noWindow.Status.RecoverableWindow = nil
	for _, c := range []struct {
		name   string
		target time.Duration // from now; 0: no targetTime (the end of the archive)
		source *v1alpha1.ServiceInstance
		want   string // "": inside; "wait: ..." waits; otherwise refused with this in the message
	}{
		{"the end of the archive", 0, archiving, ""},
		{"inside", -30 * time.Minute, archiving, ""},
		{"at the end", -10 * time.Minute, archiving, ""},
		{"before", -2 * time.Hour, archiving, "is before the recoverable window: instance \"db\" can be restored from 2026-12-05T08:00:00Z to 2026-12-05T08:50:00Z"},
		{"in the future", time.Minute, archiving, "is in the future"},
		{"after the end, still archiving", -time.Minute, archiving, "wait: waiting for it to reach the target"},
		{"after the end, archiving off", -time.Minute, stopped, "after the recoverable window, and the instance no longer archives"},
		{"after the end, source deleting", -time.Minute, deleting, "no longer archives"},
		{"no window: not checked here", -2 * time.Hour, noWindow, ""},
		{"the source gone", -2 * time.Hour, &v1alpha1.ServiceInstance{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := &v1alpha1.Restore{}
			if c.target != 0 {
				rs.Spec.TargetTime = &metav1.Time{Time: now.Add(c.target)}
			}
			out := outsideWindow(rs, c.source, now)
			switch {
			case c.want == "":
				if out != nil {
					t.Fatalf("refused or waiting: %+v", out)
				}
			case strings.HasPrefix(c.want, "wait: "):
				if out == nil || out.final || out.reason != ReasonWaitingForArchive || !strings.Contains(out.message, strings.TrimPrefix(c.want, "wait: ")) {
					t.Fatalf("want it to wait, got %+v", out)
				}
			default:
				if out == nil || !out.final || out.reason != ReasonTargetOutsideWindow || !strings.Contains(out.message, c.want) {
					t.Fatalf("want it refused with %q, got %+v", c.want, out)
				}
			}
		})
	}
}
