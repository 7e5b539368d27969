package controllers

import (
	"slices"
	"sort"
	"time"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// held reports a Backup that retention never prunes.
func held(b *v1alpha1.Backup) bool { return b.Spec.Hold || b.Labels[HoldLabel] == "true" }

// Prune chooses the Backups of a plan that retention removes. Completed backups that are not held
// are kept newest first up to count, and while younger than maxAge; the newest completed backup is
// always kept, whatever its age, so that pruning never leaves a plan without a good backup. A
// failed backup goes once a newer backup completed; running and pending ones are not touched.
func Prune(backups []v1alpha1.Backup, r *v1alpha1.BackupRetention, now time.Time) []string {
	var completed []*v1alpha1.Backup
	for i := range backups {
		if backups[i].Status.Phase == v1alpha1.BackupCompleted {
			completed = append(completed, &backups[i])
		}
	}
	sort.Slice(completed, func(i, j int) bool { return newer(completed[i], completed[j]) })
	var out []string
	if len(completed) > 0 {
		newest := completed[0]
		for i := range backups {
			b := &backups[i]
			if b.Status.Phase == v1alpha1.BackupFailed && !held(b) && newer(newest, b) {
				out = append(out, b.Name)
			}
		}
	}
	if r == nil {
		return out
	}
	kept := 0
	for i, b := range completed {
		if held(b) {
			continue
		}
		tooMany := r.Count != nil && kept >= int(*r.Count)
		tooOld := r.MaxAge != nil && finished(b).Before(now.Add(-r.MaxAge.Duration))
		if i > 0 && (tooMany || tooOld) {
			out = append(out, b.Name)
			continue
		}
		kept++
	}
	return out
}

// UntilExpiry is how long until the next backup that retention keeps becomes older than its
// maxAge (0: none will). The plan looks again then, so that a plan whose schedule is rarer than
// its maxAge, or a suspended plan, prunes a backup when it expires rather than at its next run.
func UntilExpiry(backups []v1alpha1.Backup, r *v1alpha1.BackupRetention, now time.Time) time.Duration {
	if r == nil || r.MaxAge == nil {
		return 0
	}
	pruned := Prune(backups, r, now)
	var completed []*v1alpha1.Backup
	for i := range backups {
		if b := &backups[i]; b.Status.Phase == v1alpha1.BackupCompleted && !held(b) {
			completed = append(completed, b)
		}
	}
	sort.Slice(completed, func(i, j int) bool { return newer(completed[i], completed[j]) })
	var soonest time.Duration
	for i, b := range completed {
		if i == 0 || slices.Contains(pruned, b.Name) {
			continue // the newest is kept at any age
		}
		if d := finished(b).Add(r.MaxAge.Duration).Sub(now); d > 0 && (soonest == 0 || d < soonest) {
			soonest = d
		}
	}
	return soonest
}

// finished is when a backup completed (or was created, if it has no completion time).
func finished(b *v1alpha1.Backup) time.Time {
	if b.Status.CompletionTime != nil {
		return b.Status.CompletionTime.Time
	}
	if b.Status.StartTime != nil {
		return b.Status.StartTime.Time
	}
	return b.CreationTimestamp.Time
}

func newer(a, b *v1alpha1.Backup) bool {
	ta, tb := finished(a), finished(b)
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.Name > b.Name
}
