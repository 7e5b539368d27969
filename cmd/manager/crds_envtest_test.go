package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The chart's upgrade hook against a real API server: over a previous release's ServiceInstance
// CRD, whose schema has no spec.scheduling (the API server prunes the field from what it
// stores) and a property since removed, it applies the chart's CRDs: the field is kept from then
// on, and the removed property is no longer served. Anything but a Datafleet CRD is refused and
// not created.
func TestApplyCRDsUpgradesTheServedSchema(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	crds := os.DirFS(filepath.Join(testenv.RepoRoot(), "charts", "datafleet", "crds"))
	const file = "datafleet.dev_serviceinstances.yaml"
	b, err := fs.ReadFile(crds, file)
	if err != nil {
		t.Fatal(err)
	}
	// The previous release: the same CRD without spec.scheduling and with a property this release
	// removed, applied by another manager.
	old := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &old.Object); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(old.Object, "spec", "versions")
	specProperties := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties"}
	unstructured.RemoveNestedField(versions[0].(map[string]any), append(specProperties, "scheduling")...)
	if err := unstructured.SetNestedField(versions[0].(map[string]any), map[string]any{"type": "string"}, append(specProperties, "legacy")...); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(old.Object, versions, "spec", "versions"); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, old, client.Apply, client.FieldOwner("previous-release"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	// scheduled reports whether an instance created now keeps its spec.scheduling.
	n := 0
	scheduled := func() bool {
		t.Helper()
		n++
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("orders-%d", n)},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Scheduling: &v1alpha1.SchedulingSpec{NodeSelector: map[string]string{"disk": "ssd"}}}}
		if err := c.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
		got := &v1alpha1.ServiceInstance{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(inst), got); err != nil {
			t.Fatal(err)
		}
		return got.Spec.Scheduling != nil
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if scheduled() {
			return testenv.Errorf("the previous release's schema is not served yet: spec.scheduling is kept")
		}
		return nil
	})

	var out bytes.Buffer
	if err := ApplyCRDs(ctx, c, crds, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "serviceinstances.datafleet.dev is established") {
		t.Fatalf("output: %s", out.String())
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if !scheduled() {
			return testenv.Errorf("after the hook spec.scheduling is still pruned")
		}
		return nil
	})

	served := &unstructured.Unstructured{}
	served.SetGroupVersionKind(old.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(old), served); err != nil {
		t.Fatal(err)
	}
	versions, _, _ = unstructured.NestedSlice(served.Object, "spec", "versions")
	if _, found, _ := unstructured.NestedFieldNoCopy(versions[0].(map[string]any), append(specProperties, "legacy")...); found {
		t.Fatal("the property this release removed is still served")
	}

	foreign := strings.ReplaceAll(string(b), "datafleet.dev", "example.com")
	err = ApplyCRDs(ctx, c, fstest.MapFS{"foreign.yaml": {Data: []byte(foreign)}}, &out)
	if err == nil || !strings.Contains(err.Error(), `foreign.yaml is not a CustomResourceDefinition of datafleet.dev`) {
		t.Fatalf("a CRD of another group: %v", err)
	}
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := c.Get(ctx, client.ObjectKey{Name: "serviceinstances.example.com"}, crd); err == nil {
		t.Fatal("the refused CRD was created")
	}
}
