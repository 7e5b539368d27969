package repo_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testRef is a test named in the README's status table: `dir.TestName` (or a step of the e2e
// suite, `test/e2e.testStep`).
var testRef = regexp.MustCompile("`([a-z0-9/]+)\\.([A-Za-z][A-Za-z0-9_]*)`")

// TestStatusTableNamesRealTests keeps the README's per-engine table honest: every test a cell
// names is a function in a test file of that directory, and the e2e steps named are run by
// TestOperator. A renamed or deleted test makes the table wrong; this makes it fail.
func TestStatusTableNamesRealTests(t *testing.T) {
	root := testenv.RepoRoot()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	in := false
	for _, line := range strings.Split(string(readme), "\n") {
		switch {
		case strings.HasPrefix(line, "| Feature | PostgreSQL | RabbitMQ | MongoDB"):
			in = true
		case in && strings.HasPrefix(line, "|"):
			rows = append(rows, line)
		case in:
			in = false
		}
	}
	if len(rows) < 10 {
		t.Fatalf("the README's status table has %d rows naming tests; want the table of every engine's features", len(rows))
	}
	steps, err := os.ReadFile(filepath.Join(root, "test", "e2e", "operator_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		for _, m := range testRef.FindAllStringSubmatch(row, -1) {
			dir, name := m[1], m[2]
			files, _ := filepath.Glob(filepath.Join(root, dir, "*_test.go"))
			found := false
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				found = found || strings.Contains(string(b), "\nfunc "+name+"(")
			}
			if !found {
				t.Errorf("the README's status table names %s.%s, which is no test function there", dir, name)
			}
			if dir == "test/e2e" && !regexp.MustCompile(`\{"[^"]+", `+name+`\}`).Match(steps) {
				t.Errorf("the README's status table names the e2e step %s, which TestOperator does not run", name)
			}
		}
	}
}
