// Package alerts checks the chart's Prometheus alert rules with Prometheus's own promtool: they
// parse, their unit tests (alerts_test.yaml) pass against synthetic series, and every alert has a
// test and a runbook entry in docs/observability.md.
package alerts

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const rules = "../../charts/datafleet/files/prometheus/alerts.yaml"

func promtool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PROMTOOL")
	if p == "" {
		t.Fatal("PROMTOOL is not set: run `make test` (it builds promtool from Prometheus's Go module once and caches it), " +
			"or export PROMTOOL=$(hack/go-tool.sh github.com/prometheus/prometheus/cmd/promtool $(make -s prometheus-version))")
	}
	return p
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestTheRulesParse(t *testing.T) { run(t, "check", "rules", rules) }

func TestTheRulesUnitTestsPass(t *testing.T) { run(t, "test", "rules", "alerts_test.yaml") }

// Every alert is exercised by a unit test and has a runbook entry, which its annotation links.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") && !strings.Contains(string(tests), "alertname: "+r.Alert+",") {
				t.Errorf("%s has no unit test in alerts_test.yaml", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/observability.md#")
			if !ok {
				t.Errorf("%s: runbook %q is not an entry of docs/observability.md", r.Alert, r.Annotations["runbook"])
				continue
			}
			if !slices.ContainsFunc(strings.Split(string(docs), "\n"), func(l string) bool {
				return strings.HasPrefix(l, "#") && headingAnchor(l) == anchor
			}) {
				t.Errorf("%s: docs/observability.md has no heading #%s", r.Alert, anchor)
			}
		}
	}
	if len(alerts) < 8 {
		t.Fatalf("only %d alerts read: %v", len(alerts), alerts)
	}
}

// headingAnchor is the anchor GitHub gives a Markdown heading line.
func headingAnchor(line string) string {
	h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
