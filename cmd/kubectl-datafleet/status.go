package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// InstanceStatus is one instance in the status view: what its objects say, and the figures its
// agents serve (Figures), when the caller could read them.
type InstanceStatus struct {
	Namespace, Name, Engine, Version, Phase string
	Ready, Replicas                         int32
	Primary                                 string
	// LastBackup is when its newest completed Backup completed; nil without one.
	LastBackup *time.Time
	// DaysToSundown of its version (negative past it); nil when the catalog sets none.
	DaysToSundown *int
	Pending       []string
	Pods          []PodStatus
	// FiguresNote says why the figures are missing, "" when they were read.
	FiguresNote string
}

// PodStatus is one member: its role and state as the operator last saw them (status.members),
// and its agent's figures.
type PodStatus struct {
	Name, Role, State string
	Figures           PodFigures
}

// Status reads the instances of namespace (every namespace when ""), or the one named, with their
// catalog entries and backups.
func Status(ctx context.Context, c client.Reader, namespace, name string, now time.Time) ([]InstanceStatus, error) {
	var insts []v1alpha1.ServiceInstance
	if name != "" {
		inst := &v1alpha1.ServiceInstance{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, inst); err != nil {
			return nil, fmt.Errorf("ServiceInstance %s/%s: %w", namespace, name, err)
		}
		insts = append(insts, *inst)
	} else {
		list := &v1alpha1.ServiceInstanceList{}
		if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing ServiceInstances: %w", err)
		}
		insts = list.Items
	}
	cats, err := readCatalogs(ctx, c)
	if err != nil {
		return nil, err
	}
	backups := &v1alpha1.BackupList{}
	if err := c.List(ctx, backups, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Backups: %w", err)
	}
	last := map[[2]string]time.Time{} // namespace, instance → newest completion
	for _, b := range backups.Items {
		if b.Status.Phase != v1alpha1.BackupCompleted || b.Status.CompletionTime == nil {
			continue
		}
		k := [2]string{b.Namespace, b.Spec.InstanceRef.Name}
		if t := b.Status.CompletionTime.Time; t.After(last[k]) {
			last[k] = t
		}
	}
	var out []InstanceStatus
	for _, si := range insts {
		s := InstanceStatus{Namespace: si.Namespace, Name: si.Name, Engine: si.Spec.Engine, Version: cmp.Or(si.Status.Version, si.Spec.Version),
			Phase: string(si.Status.Phase), Ready: si.Status.ReadyReplicas, Replicas: si.Status.Replicas, Primary: si.Status.CurrentPrimary}
		if t, ok := last[[2]string{si.Namespace, si.Name}]; ok {
			s.LastBackup = &t
		}
		if sundown, ok := cats.sundown(si.Spec.Engine, s.Version); ok {
			s.DaysToSundown = daysUntil(sundown, now)
		}
		for _, p := range si.Status.PendingRestarts {
			s.Pending = append(s.Pending, p.Reason)
		}
		for _, m := range si.Status.Members {
			s.Pods = append(s.Pods, PodStatus{Name: m.Name, Role: m.Role, State: m.State})
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// PrintStatus writes each instance as a line of what it is, then a table of its pods.
func PrintStatus(w io.Writer, rows []InstanceStatus, now time.Time) error {
	for i, s := range rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s/%s   %s %s   %s   %d/%d ready", s.Namespace, s.Name, s.Engine, dash(s.Version), dash(s.Phase), s.Ready, s.Replicas)
		if s.Primary != "" {
			fmt.Fprintf(w, "   primary %s", s.Primary)
		}
		fmt.Fprintln(w)
		backup := "none"
		if s.LastBackup != nil {
			backup = age(now.Sub(*s.LastBackup)) + " ago"
		}
		sundown := "none"
		if s.DaysToSundown != nil {
			sundown = fmt.Sprintf("%d days", *s.DaysToSundown)
		}
		fmt.Fprintf(w, "last backup: %s   days to sundown: %s", backup, sundown)
		if len(s.Pending) > 0 {
			fmt.Fprintf(w, "   pending restarts: %s", strings.Join(s.Pending, ", "))
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "POD\tROLE\tSTATE\tLAG\tCONNECTIONS\tENGINE RESTARTS")
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.Role), dash(p.State), dash(p.Figures.Lag), dash(p.Figures.Connections), dash(p.Figures.Restarts))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if s.FiguresNote != "" {
			fmt.Fprintf(w, "(no lag or connections: %s)\n", s.FiguresNote)
		}
	}
	return nil
}

// age is d the way kubectl prints ages: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
