//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// docSection is one "## " section of a document and the sh blocks in it, in order.
type docSection struct {
	title  string
	blocks []string
}

// shSections reads the sh code blocks of a Markdown document by section; other blocks (console,
// yaml) are not run.
func shSections(t *testing.T, file string) []docSection {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docSection
	var block *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case block == nil && strings.HasPrefix(line, "## "):
			out = append(out, docSection{title: strings.TrimPrefix(line, "## ")})
		case block == nil && line == "```sh":
			if len(out) == 0 {
				t.Fatalf("%s: an sh block before the first section", file)
			}
			block = &strings.Builder{}
		case block != nil && line == "```":
			out[len(out)-1].blocks = append(out[len(out)-1].blocks, block.String())
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil || block != nil {
		t.Fatalf("%s: %v (an unclosed block: %v)", file, err, block != nil)
	}
	return out
}

// testGettingStarted runs docs/getting-started.md as a newcomer would after `make demo`: every
// sh block, section by section, in bash with kubectl and the plugin on PATH, then checks what the
// section claims on the cluster itself. The suite's install stands in for make demo, and MinIO
// in datafleet-demo with the demo's credentials for the store make demo runs.
func testGettingStarted(t *testing.T) {
	ctx := context.Background()
	ensureCatalog(t, "postgres",
		v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"], Upgrades: []v1alpha1.UpgradePath{{To: "17", Method: v1alpha1.UpgradeBlueGreen}}},
		v1alpha1.CatalogVersion{Version: "17", Image: env.images["postgres-17"], Default: true})
	demo := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "datafleet-demo", Labels: restricted}}
	if err := env.c.Create(ctx, demo); err != nil {
		t.Fatal(err)
	}
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	t.Cleanup(func() {
		if t.Failed() {
			env.dump(t, "shop")
		}
		_ = env.c.Delete(context.Background(), shop)
		_ = env.c.Delete(context.Background(), demo)
	})
	deployMinIOAs(t, demo.Name, "datafleet-demo", "datafleet-demo-secret")

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl must be on PATH for the document's commands (test/e2e/run.sh puts the cluster's there): %v", err)
	}
	path := strings.Join([]string{filepath.Dir(pluginBinary(t)), filepath.Dir(kubectl), os.Getenv("PATH")}, string(os.PathListSeparator))
	checks := map[string]func(){
		"3.": func() {
			if got := psqlIn(t, "shop", "orders-copy-0", "shop", "SELECT count(*) FROM items"); got != "3" {
				t.Fatalf("the restored instance has %s items, want the 3 the document inserted", got)
			}
		},
		"4.": func() {
			inst := &v1alpha1.ServiceInstance{}
			if err := env.c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "orders-17"}, inst); err != nil || inst.Status.Version != "17" {
				t.Fatalf("the upgraded instance: version %q, %v", inst.Status.Version, err)
			}
			if got := psqlIn(t, "shop", "orders-17-0", "shop", "SELECT count(*) FROM items"); got != "3" {
				t.Fatalf("the instance on 17 has %s items, want 3", got)
			}
		},
		"6.": func() { waitGone(t, "the document's namespace", shop) },
	}
	start := time.Now()
	for _, s := range shSections(t, filepath.Join(env.root, "docs", "getting-started.md")) {
		for _, b := range s.blocks {
			bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
			cmd := exec.CommandContext(bctx, "bash", "-euo", "pipefail", "-c", b)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("E2E_KUBECONFIG"), "PATH="+path)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("docs/getting-started.md, %s: %v\n--- the block:\n%s--- its output:\n%s", s.title, err, b, out)
			}
			t.Logf("GETTING STARTED: %s:\n%s", s.title, out)
		}
		for prefix, check := range checks {
			if strings.HasPrefix(s.title, prefix) {
				check()
			}
		}
	}
	t.Logf("GETTING STARTED: every command of docs/getting-started.md ran in %s", time.Since(start).Round(time.Second))
}
