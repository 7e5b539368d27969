package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// CreateChartCatalogs creates the VersionCatalogs of the chart's values, as `helm install` does.
func CreateChartCatalogs(tb testing.TB, c client.Client) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "charts", "datafleet", "values.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	var values struct {
		Catalogs struct {
			Engines map[string]v1alpha1.VersionCatalogSpec `json:"engines"`
		} `json:"catalogs"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		tb.Fatal(err)
	}
	for name, spec := range values.Catalogs.Engines {
		spec.Engine = name
		if err := c.Create(context.Background(), &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}); err != nil {
			tb.Fatal(err)
		}
	}
}
