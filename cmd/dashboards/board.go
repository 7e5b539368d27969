package main

import (
	"fmt"
	"strings"
)

// prometheus is the data source every panel queries: the dashboard's "datasource" variable.
var prometheus = &datasource{Type: "prometheus", UID: "${datasource}"}

// board lays panels out left to right, 24 columns wide, in rows.
type board struct {
	d        dashboard
	x, y, id int
	rowH     int
}

func newBoard(uid, title, description string, vars ...variable) *board {
	all := append([]variable{{Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus"}}, vars...)
	return &board{d: dashboard{UID: uid, Title: title, Description: description, Tags: []string{"datafleet"}, Editable: true,
		SchemaVersion: 39, Refresh: "30s", Time: timeRange{From: "now-6h", To: "now"}, Templating: templating{List: all}}}
}

// labelVariable is a variable listing the values of label in the series of metric.
func labelVariable(name, label, metric string) variable {
	return variable{Name: name, Label: label, Type: "query", Datasource: prometheus, Refresh: 2, IncludeAll: true, Multi: true, Sort: 1,
		Query: map[string]any{"query": fmt.Sprintf("label_values(%s, %s)", metric, name), "refId": "variable"}}
}

// row starts a row of panels under a title.
func (b *board) row(title string) {
	b.newLine()
	b.id++
	b.d.Panels = append(b.d.Panels, panel{ID: b.id, Type: "row", Title: title, GridPos: gridPos{H: 1, W: 24, X: 0, Y: b.y}, Collapsed: new(bool)})
	b.y++
}

func (b *board) newLine() {
	if b.x > 0 {
		b.x, b.y = 0, b.y+b.rowH
	}
	b.rowH = 0
}

// add places a panel w columns wide and h high, wrapping to a new line when the row is full.
func (b *board) add(kind, title, description, unit string, w, h int, targets ...target) {
	if b.x+w > 24 {
		b.newLine()
	}
	for i := range targets {
		targets[i].RefID = string(rune('A' + i))
		targets[i].Datasource = prometheus
		if kind == "table" {
			targets[i].Instant, targets[i].Format = true, "table"
		}
	}
	b.id++
	p := panel{ID: b.id, Type: kind, Title: title, Description: description, GridPos: gridPos{H: h, W: w, X: b.x, Y: b.y},
		Datasource: prometheus, Targets: targets, FieldConfig: &fieldConfig{Defaults: fieldDefaults{Unit: unit}, Overrides: []any{}}}
	b.d.Panels = append(b.d.Panels, p)
	b.x += w
	b.rowH = max(b.rowH, h)
}

func q(expr, legend string) target { return target{Expr: expr, LegendFormat: legend} }

// engineBoard is a board of one engine's instances: namespace and instance variables listed from
// upMetric's series, and sel, which puts the engine and both variables where a query says {SEL}
// ({SEL,more="matchers"} adds to them).
func engineBoard(engine, title, description, upMetric string) (*board, func(string) string) {
	b := newBoard(engine, title, description,
		labelVariable("namespace", "Namespace", upMetric),
		labelVariable("serviceinstance", "Instance", upMetric+`{namespace=~"$namespace"}`))
	sel := func(expr string) string {
		return strings.ReplaceAll(expr, "{SEL", `{engine="`+engine+`",namespace=~"$namespace",serviceinstance=~"$serviceinstance"`)
	}
	return b, sel
}
