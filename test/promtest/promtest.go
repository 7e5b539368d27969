// Package promtest reads what a Prometheus endpoint served, for tests that assert on the figures
// themselves: which series exist, with which labels and values.
package promtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Parse reads Prometheus's text format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Series are a family's series: each one's labels (name=value, sorted, comma-joined) to its value.
func (f Families) Series(name string) map[string]float64 {
	fam, ok := f[name]
	if !ok {
		return nil
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(labels)
		out[strings.Join(labels, ",")] = value(m)
	}
	return out
}

// Value is the value of name's series with exactly the given labels ("name=value" each), and
// whether there is one.
func (f Families) Value(name string, labels ...string) (float64, bool) {
	labels = slices.Clone(labels)
	slices.Sort(labels)
	v, ok := f.Series(name)[strings.Join(labels, ",")]
	return v, ok
}

// Names lists the families, sorted.
func (f Families) Names() []string { return slices.Sorted(maps.Keys(f)) }

// String lists every series, for a failing test's message.
func (f Families) String() string {
	var b strings.Builder
	for _, n := range f.Names() {
		s := f.Series(n)
		for _, l := range slices.Sorted(maps.Keys(s)) {
			fmt.Fprintf(&b, "%s{%s} %g\n", n, l, s[l])
		}
	}
	return b.String()
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return 0
}

// Gather collects g's families, as a scrape of its endpoint would.
func Gather(g prometheus.Gatherer) (Families, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := Families{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out, nil
}
