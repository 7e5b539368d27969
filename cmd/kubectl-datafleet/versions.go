package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
)

// VersionRow is one instance in the versions view.
type VersionRow struct {
	Engine, Version, Namespace, Name string
	// Support is the instance's VersionSupported reason (Supported, NearingSundown, PastSundown...).
	Support string
	// Sundown is the date of the version's sundown, empty when it has none.
	Sundown string
	// DaysLeft to the sundown (negative past it); nil without one.
	DaysLeft *int
}

// Versions reads every instance (of engine, when given) and its catalog entry.
func Versions(ctx context.Context, c client.Reader, engine string, now time.Time) ([]VersionRow, error) {
	insts := &v1alpha1.ServiceInstanceList{}
	if err := c.List(ctx, insts); err != nil {
		return nil, fmt.Errorf("listing ServiceInstances: %w", err)
	}
	cats, err := readCatalogs(ctx, c)
	if err != nil {
		return nil, err
	}
	var rows []VersionRow
	for _, si := range insts.Items {
		if engine != "" && si.Spec.Engine != engine {
			continue
		}
		r := VersionRow{Engine: si.Spec.Engine, Version: cmp.Or(si.Status.Version, si.Spec.Version), Namespace: si.Namespace, Name: si.Name}
		if cond := meta.FindStatusCondition(si.Status.Conditions, v1alpha1.ConditionVersionSupported); cond != nil {
			r.Support = cond.Reason
		}
		if sundown, ok := cats.sundown(si.Spec.Engine, r.Version); ok {
			r.Sundown = sundown.UTC().Format(time.DateOnly)
			r.DaysLeft = daysUntil(sundown, now)
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b VersionRow) int {
		return cmp.Or(cmp.Compare(a.Engine, b.Engine), catalog.CompareVersions(a.Version, b.Version),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return rows, nil
}

// catalogs are the VersionCatalogs by engine.
type catalogs map[string]*v1alpha1.VersionCatalog

func readCatalogs(ctx context.Context, c client.Reader) (catalogs, error) {
	cats := &v1alpha1.VersionCatalogList{}
	if err := c.List(ctx, cats); err != nil {
		return nil, fmt.Errorf("listing VersionCatalogs: %w", err)
	}
	byEngine := catalogs{}
	for i := range cats.Items {
		byEngine[cats.Items[i].Name] = &cats.Items[i]
	}
	return byEngine, nil
}

// sundown is the sundown of engine's version in its catalog; false when it has none.
func (cs catalogs) sundown(engine, version string) (time.Time, bool) {
	cat := cs[engine]
	if cat == nil || version == "" {
		return time.Time{}, false
	}
	rel, err := catalog.Resolve(cat, version)
	if err != nil || rel.Sundown == nil {
		return time.Time{}, false
	}
	return *rel.Sundown, true
}

// daysUntil counts whole days from now to t (negative past it).
func daysUntil(t, now time.Time) *int {
	days := int(t.Sub(now).Hours() / 24)
	return &days
}

// PrintVersions writes the rows as kubectl writes tables.
func PrintVersions(w io.Writer, rows []VersionRow) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tVERSION\tNAMESPACE\tNAME\tSUPPORT\tSUNDOWN\tDAYS LEFT")
	for _, r := range rows {
		days := "-"
		if r.DaysLeft != nil {
			days = strconv.Itoa(*r.DaysLeft)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Engine, dash(r.Version), r.Namespace, r.Name, dash(r.Support), dash(r.Sundown), days)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
