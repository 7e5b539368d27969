package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// RolloutRow is one instance the fleet's rollout has not finished with: a restart the operator
// holds back, or an instance paused by hand.
type RolloutRow struct {
	Namespace, Name, Engine string
	// State is Pending (a restart waits: for the spec, a window or the fleet's pace) or Paused.
	State string
	// Reason and Message are the pending restart's (AgentUpgrade) or why it is paused.
	Reason, Message string
}

// RolloutSummary counts the fleet.
type RolloutSummary struct {
	Instances, Pending, Paused int
}

// Rollout reads every instance and lists those with a pending restart or paused.
func Rollout(ctx context.Context, c client.Reader) ([]RolloutRow, RolloutSummary, error) {
	insts := &v1alpha1.ServiceInstanceList{}
	if err := c.List(ctx, insts); err != nil {
		return nil, RolloutSummary{}, fmt.Errorf("listing ServiceInstances: %w", err)
	}
	var rows []RolloutRow
	sum := RolloutSummary{Instances: len(insts.Items)}
	for _, si := range insts.Items {
		row := RolloutRow{Namespace: si.Namespace, Name: si.Name, Engine: si.Spec.Engine}
		switch {
		case si.Spec.Paused:
			sum.Paused++
			row.State, row.Reason, row.Message = "Paused", "Paused", "spec.paused: the operator changes nothing until it is false"
		case len(si.Status.PendingRestarts) > 0:
			sum.Pending++
			p := si.Status.PendingRestarts[0]
			row.State, row.Reason, row.Message = "Pending", p.Reason, p.Message
		default:
			continue
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b RolloutRow) int {
		return cmp.Or(cmp.Compare(a.State, b.State), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return rows, sum, nil
}

// PrintRollout writes the summary and the rows as kubectl writes tables.
func PrintRollout(w io.Writer, rows []RolloutRow, sum RolloutSummary) error {
	fmt.Fprintf(w, "%d instances: %d up to date, %d with a pending restart, %d paused\n",
		sum.Instances, sum.Instances-sum.Pending-sum.Paused, sum.Pending, sum.Paused)
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tENGINE\tSTATE\tREASON\tMESSAGE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Engine, r.State, r.Reason, r.Message)
	}
	return tw.Flush()
}
