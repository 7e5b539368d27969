package enginetest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/framework/apply"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

var update = flag.Bool("update", false, "rewrite golden files with the current rendering")

// Golden renders in and compares the YAML with the golden file at path (run the test with -update
// to rewrite it after an intended change, and review the diff).
func Golden(t *testing.T, e engine.Engine, in engine.RenderInput, path string) {
	t.Helper()
	objs, err := e.Render(in)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	GoldenObjects(t, objs, path)
}

// GoldenObjects compares objects' YAML with the golden file at path (-update rewrites it).
func GoldenObjects(t *testing.T, objs []client.Object, path string) {
	t.Helper()
	scheme := engine.NewScheme()
	var buf bytes.Buffer
	for _, o := range objs {
		u, err := apply.ToUnstructured(scheme, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("rendering differs from %s (run with -update and review the diff):\n%s", path, buf.String())
	}
}
