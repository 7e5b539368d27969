package instance_test

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// The CRD schema and CEL rules reject bad input at the API server, with a message a developer
// understands.
func TestAPIServerRejectsInvalidInstances(t *testing.T) {
	ctx, c, ns := setup(t)
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.ServiceInstance)
		want   string
	}{
		{"zero replicas", func(si *v1alpha1.ServiceInstance) { si.Spec.Replicas = ptr.To[int32](0) },
			"spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"},
		{"bad parameter name", func(si *v1alpha1.ServiceInstance) { si.Spec.Parameters = map[string]string{"max connections": "1"} },
			"parameter names must start with a letter or underscore"},
		{"long name", func(si *v1alpha1.ServiceInstance) { si.Name = strings.Repeat("a", 53) },
			"ServiceInstance names are at most 52 characters"},
		{"name not a DNS label", func(si *v1alpha1.ServiceInstance) { si.Name = "1db" },
			"ServiceInstance names must start with a lowercase letter"},
		{"empty engine", func(si *v1alpha1.ServiceInstance) { si.Spec.Engine = "" },
			"spec.engine: Invalid value: \"\": spec.engine in body should be at least 1 chars long"},
		{"zero storage", func(si *v1alpha1.ServiceInstance) { si.Spec.Storage = &v1alpha1.StorageSpec{Size: quantity("0")} },
			"storage.size must be greater than zero"},
		{"unknown deletion policy", func(si *v1alpha1.ServiceInstance) { si.Spec.DeletionPolicy = "Shred" },
			`spec.deletionPolicy: Unsupported value: "Shred": supported values: "Retain", "Delete"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := newInstance(ns, "db")
			tc.mutate(si)
			err := c.Create(ctx, si)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAPIServerRejectsInvalidUpdates(t *testing.T) {
	ctx, c, ns := setup(t)
	si := newInstance(ns, "db")
	si.Spec.Storage = &v1alpha1.StorageSpec{Size: quantity("10Gi"), StorageClassName: ptr.To("fast")}
	si.Spec.DeletionProtection = true // keep the finalizer from racing the updates below
	if err := c.Create(ctx, si); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.ServiceInstance)
		want   string
	}{
		{"engine changed", func(si *v1alpha1.ServiceInstance) { si.Spec.Engine = "other" },
			"engine is immutable: create a new instance and move the data with a backup and restore"},
		{"storage shrunk", func(si *v1alpha1.ServiceInstance) { si.Spec.Storage.Size = quantity("5Gi") },
			"storage.size cannot be decreased"},
		{"storage shrunk in other units", func(si *v1alpha1.ServiceInstance) { si.Spec.Storage.Size = quantity("10000Mi") },
			"storage.size cannot be decreased"},
		{"storage class changed", func(si *v1alpha1.ServiceInstance) { si.Spec.Storage.StorageClassName = ptr.To("slow") },
			"storage.storageClassName is immutable"},
		{"storage removed", func(si *v1alpha1.ServiceInstance) { si.Spec.Storage = nil },
			"storage cannot be removed once set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := &v1alpha1.ServiceInstance{}
			if err := get(t, c, cur, ns, "db"); err != nil {
				t.Fatal(err)
			}
			orig := cur.DeepCopy()
			tc.mutate(cur)
			err := c.Patch(ctx, cur, client.MergeFrom(orig))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("update error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Growing is fine.
	cur := &v1alpha1.ServiceInstance{}
	_ = get(t, c, cur, ns, "db")
	orig := cur.DeepCopy()
	cur.Spec.Storage.Size = quantity("20Gi")
	cur.Spec.DeletionProtection = false
	if err := c.Patch(ctx, cur, client.MergeFrom(orig)); err != nil {
		t.Fatalf("growing storage was refused: %v", err)
	}
}

func TestAPIServerRejectsInvalidCatalogsAndRestores(t *testing.T) {
	ctx, c, ns := setup(t)
	twoDefaults := &v1alpha1.VersionCatalog{}
	twoDefaults.Name = "other"
	twoDefaults.Spec = v1alpha1.VersionCatalogSpec{Engine: "other", Versions: []v1alpha1.CatalogVersion{
		{Version: "1", Image: "x:1", Default: true}, {Version: "2", Image: "x:2", Default: true}}}
	if err := c.Create(ctx, twoDefaults); err == nil || !strings.Contains(err.Error(), "at most one version may be the default") {
		t.Errorf("two defaults: %v", err)
	}
	misnamed := &v1alpha1.VersionCatalog{}
	misnamed.Name = "pg"
	misnamed.Spec = v1alpha1.VersionCatalogSpec{Engine: "postgres", Versions: []v1alpha1.CatalogVersion{{Version: "1", Image: "x:1"}}}
	if err := c.Create(ctx, misnamed); err == nil || !strings.Contains(err.Error(), "metadata.name must equal spec.engine") {
		t.Errorf("misnamed catalog: %v", err)
	}
	both := &v1alpha1.Restore{}
	both.Name, both.Namespace = "r", ns
	both.Spec = v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: "b"}, Target: v1alpha1.RestoreTarget{
		NewInstance: &v1alpha1.NewInstanceTarget{Name: "x"}, InPlace: &v1alpha1.InPlaceRestore{Confirm: "x"}}}
	if err := c.Create(ctx, both); err == nil || !strings.Contains(err.Error(), "set exactly one of target.newInstance and target.inPlace") {
		t.Errorf("restore with two targets: %v", err)
	}
}
