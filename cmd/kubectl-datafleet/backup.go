package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// BackupOptions are `kubectl datafleet backup`'s: the Backup's name (default the instance's and
// the time) and its method (default the instance's: a logical dump).
type BackupOptions struct {
	Name   string
	Method v1alpha1.BackupMethod
}

// Backup creates an on-demand Backup of the instance and returns it.
func Backup(ctx context.Context, c client.Client, ns, instance string, o BackupOptions, now time.Time) (*v1alpha1.Backup, error) {
	name := o.Name
	if name == "" {
		name = names.Child(instance, now.UTC().Format("20060102-150405"), names.MaxDNSLabel)
	}
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: instance}, Method: o.Method}}
	return b, c.Create(ctx, b)
}

// RestoreOptions are `kubectl datafleet restore`'s: the new instance (and its version, for a
// blue/green move), a point in time for a physical backup, and the Restore's name (default the
// backup's and the target's).
type RestoreOptions struct {
	To, Version, Name string
	Time              *time.Time
}

// Restore creates a Restore of the backup into a new instance and returns it. In place is left
// to a Restore written by hand: it needs the instance's name typed again as a confirmation.
func Restore(ctx context.Context, c client.Client, ns, backup string, o RestoreOptions) (*v1alpha1.Restore, error) {
	if o.To == "" {
		return nil, fmt.Errorf("restore: --to names the new instance to restore into (in place takes a Restore with target.inPlace.confirm)")
	}
	name := o.Name
	if name == "" {
		name = names.Child(backup, "to-"+o.To, names.MaxDNSLabel)
	}
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: backup},
			Target: v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: o.To, Version: o.Version}}}}
	if o.Time != nil {
		t := metav1.NewTime(*o.Time)
		rs.Spec.TargetTime = &t
	}
	return rs, c.Create(ctx, rs)
}

// waitFinished polls the Backup or Restore until it completes or fails, printing each phase it
// passes through, and returns an error naming the reason if it failed.
func waitFinished(ctx context.Context, c client.Client, out io.Writer, o client.Object, every time.Duration) error {
	last := ""
	var result error
	err := wait.PollUntilContextCancel(ctx, every, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return false, err
		}
		run, conditions := runOf(o)
		if phase := string(run.Phase); phase != "" && phase != last {
			fmt.Fprintf(out, "%s %s: %s\n", kindOf(o), o.GetName(), phase)
			last = phase
		}
		switch run.Phase {
		case v1alpha1.BackupCompleted:
			return true, nil
		case v1alpha1.BackupFailed:
			reason, message := "", ""
			if c := meta.FindStatusCondition(conditions, v1alpha1.ConditionReady); c != nil {
				reason, message = c.Reason, c.Message
			}
			result = fmt.Errorf("%s %s failed (%s): %s", kindOf(o), o.GetName(), reason, message)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s %s: %w", kindOf(o), o.GetName(), err)
	}
	return result
}

func runOf(o client.Object) (v1alpha1.RunStatus, []metav1.Condition) {
	switch o := o.(type) {
	case *v1alpha1.Backup:
		return o.Status.RunStatus, o.Status.Conditions
	case *v1alpha1.Restore:
		return o.Status.RunStatus, o.Status.Conditions
	}
	return v1alpha1.RunStatus{}, nil
}

func kindOf(o client.Object) string {
	if _, ok := o.(*v1alpha1.Backup); ok {
		return "backup"
	}
	return "restore"
}

// PrintBackup is the finished Backup's summary.
func PrintBackup(out io.Writer, b *v1alpha1.Backup) {
	fmt.Fprintf(out, "backup %s/%s of %s: %s, %d bytes, encrypted %v, at %s\n", b.Namespace, b.Name, b.Spec.InstanceRef.Name,
		b.Status.Phase, b.Status.SizeBytes, b.Status.Encrypted, b.Status.Location)
}
