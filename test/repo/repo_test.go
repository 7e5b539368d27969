// Package repo holds tests about the repository itself: generated files are current and the
// framework stays independent of every engine.
package repo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// TestGeneratedFilesAreCurrent regenerates the CRDs, the RBAC role the chart grants and the deepcopy
// code into a scratch directory and compares them with what is committed.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	cg := os.Getenv("CONTROLLER_GEN")
	if cg == "" {
		t.Fatal("CONTROLLER_GEN is not set: run `make test`, which installs controller-gen into the cache and sets it")
	}
	root := testenv.RepoRoot()
	tmp := t.TempDir()
	crds := filepath.Join(tmp, "crds")
	run(t, root, cg, "crd", "paths=./api/...", "output:crd:artifacts:config="+crds)
	compareDirs(t, filepath.Join(root, "charts", "datafleet", "crds"), crds)
	rbac := filepath.Join(tmp, "rbac")
	run(t, root, cg, "rbac:roleName=datafleet-manager", "paths=./framework/...", "paths=./engines/...", "paths=./cmd/...", "output:rbac:artifacts:config="+rbac)
	compareDirs(t, filepath.Join(root, "charts", "datafleet", "files"), rbac)

	// Deepcopy: generate into a copy of the API package.
	apiCopy := filepath.Join(root, "api", "v1alpha1")
	before, err := os.ReadFile(filepath.Join(apiCopy, "zz_generated.deepcopy.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "deepcopy")
	run(t, root, cg, "object", "paths=./api/...", "output:object:dir="+out)
	after, err := os.ReadFile(filepath.Join(out, "zz_generated.deepcopy.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("api/v1alpha1/zz_generated.deepcopy.go is stale: run `make generate` and commit the result")
	}
}

func compareDirs(t *testing.T, committed, fresh string) {
	t.Helper()
	want, _ := filepath.Glob(filepath.Join(fresh, "*.yaml"))
	have, _ := filepath.Glob(filepath.Join(committed, "*.yaml"))
	if len(want) != len(have) {
		t.Errorf("%s holds %d files, controller-gen makes %d: run `make generate`", committed, len(have), len(want))
	}
	for _, f := range want {
		a, err := os.ReadFile(filepath.Join(committed, filepath.Base(f)))
		b, _ := os.ReadFile(f)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s is stale: run `make generate` and commit the result", filepath.Join(committed, filepath.Base(f)))
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestFrameworkImportsNoEngine keeps the layering: engines depend on the framework, never the reverse.
func TestFrameworkImportsNoEngine(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "./framework/...")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/datafleet-dev/datafleet/engines/") {
			t.Errorf("framework depends on engine package %s", pkg)
		}
	}
}

// Imports the engine contract's layering forbids beyond "framework imports no engine": the
// instance controller does not reach into the binding controller (they share names only through
// framework/names).
func TestLayering(t *testing.T) {
	const mod = "github.com/datafleet-dev/datafleet/"
	layers := map[string][]string{
		"framework/instance": {"framework/binding", "framework/agent/agentruntime"},
		// An engine's pure tests (rendering, goldens, conformance) need none of the operator's wiring.
		"framework/engine/enginetest": {"framework/operator", "framework/instance", "test/testenv"},
		// The operator's side reaches agents through their contract, never their in-pod runtime.
		"framework/workload": {"framework/agent/agentruntime"},
		"framework/certs":    {"framework/agent/agentruntime"},
		"framework/engine":   {"framework/agent/agentruntime"},
	}
	// An engine's controller imports its agent for the names they share, never the reverse: for
	// every engine, the reference included.
	agents, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "engines", "*", "agent"))
	if err != nil || len(agents) < 4 {
		t.Fatalf("engine agents found: %v %v", agents, err)
	}
	for _, a := range agents {
		engine := filepath.Base(filepath.Dir(a))
		layers["engines/"+engine+"/agent"] = []string{"engines/" + engine}
	}
	for pkg, forbidden := range layers {
		cmd := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./"+pkg)
		cmd.Dir = testenv.RepoRoot()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, imp := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if imp == mod+f {
					t.Errorf("%s imports %s", pkg, f)
				}
			}
		}
	}
}
