package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const dir = "../../charts/datafleet/files/dashboards"

// The chart ships what the definitions write, nothing else: regenerate with `make generate`.
func TestTheChartsDashboardsAreGenerated(t *testing.T) {
	files := Files()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from its definition (%v): run `make generate`", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("%s is no dashboard's: remove it", e.Name())
		}
	}
}

// Panels do not overlap and stay within the grid's 24 columns, and every panel queries something.
func TestPanelsAreLaidOut(t *testing.T) {
	for _, d := range all() {
		var taken [][2]int
		for _, p := range d.Panels {
			if p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: %q is wider than the grid", d.UID, p.Title)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: %q has no query", d.UID, p.Title)
			}
			for _, q := range p.Targets {
				if strings.Contains(q.Expr, "SEL") {
					t.Errorf("%s: %q queries %s, with a selector left unexpanded", d.UID, p.Title, q.Expr)
				}
			}
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
					if slices.Contains(taken, [2]int{x, y}) {
						t.Fatalf("%s: %q overlaps another panel at %d,%d", d.UID, p.Title, x, y)
					}
					taken = append(taken, [2]int{x, y})
				}
			}
		}
	}
}
