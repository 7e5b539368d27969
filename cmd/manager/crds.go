package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// crdFieldOwner is the field manager of the CRDs the chart's upgrade hook applies.
const crdFieldOwner = "datafleet-crd-upgrade"

// maxCRD bounds one CRD file the hook reads (the largest, ServiceInstance's, is about 120 KiB).
const maxCRD = 4 << 20

// runApplyCRDs is "manager apply-crds DIR": the chart's pre-upgrade hook. Helm installs a chart's
// crds/ directory on install and never again, so an upgraded operator would run against the
// previous release's schema; this Job applies this release's CRDs (the chart mounts them from
// a ConfigMap at DIR) before the upgrade's other objects, and waits until each is served.
func runApplyCRDs(args []string) error {
	if len(args) != 1 {
		return errors.New("apply-crds: give the directory of the CRDs")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := agentruntime.SignalContext()
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return ApplyCRDs(ctx, c, os.DirFS(args[0]), os.Stdout)
}

// ApplyCRDs creates or replaces every *.yaml of dir, each a Datafleet CustomResourceDefinition,
// and then waits until every one is Established. It refuses any other object: the hook's
// permission is for Datafleet's CRDs only.
func ApplyCRDs(ctx context.Context, c client.Client, dir fs.FS, out io.Writer) error {
	files, err := fs.Glob(dir, "*.yaml")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("apply-crds: no *.yaml in the directory: the chart mounts its crds/ there")
	}
	var applied []*unstructured.Unstructured
	for _, f := range files {
		crd, err := readCRD(dir, f)
		if err != nil {
			return err
		}
		if err := replaceCRD(ctx, c, crd); err != nil {
			return fmt.Errorf("applying %s: %w", crd.GetName(), err)
		}
		fmt.Fprintf(out, "applied %s\n", crd.GetName())
		applied = append(applied, crd)
	}
	for _, crd := range applied {
		err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
				return false, err
			}
			return established(crd), nil
		})
		if err != nil {
			return fmt.Errorf("waiting for %s to be established: %w", crd.GetName(), err)
		}
		fmt.Fprintf(out, "%s is established\n", crd.GetName())
	}
	return nil
}

// replaceCRD creates the CRD, or replaces the served one's spec with the file's whole, as
// `kubectl replace` would: the chart's CRD is the whole truth, whoever wrote the served one (the
// previous release's were created by Helm); labels and annotations are merged.
func replaceCRD(ctx context.Context, c client.Client, crd *unstructured.Unstructured) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		served := &unstructured.Unstructured{}
		served.SetGroupVersionKind(crd.GroupVersionKind())
		err := c.Get(ctx, client.ObjectKeyFromObject(crd), served)
		if apierrors.IsNotFound(err) {
			return c.Create(ctx, crd.DeepCopy(), client.FieldOwner(crdFieldOwner))
		}
		if err != nil {
			return err
		}
		served.Object["spec"] = crd.Object["spec"]
		served.SetLabels(merged(served.GetLabels(), crd.GetLabels()))
		served.SetAnnotations(merged(served.GetAnnotations(), crd.GetAnnotations()))
		return c.Update(ctx, served, client.FieldOwner(crdFieldOwner))
	})
}

func merged(base, over map[string]string) map[string]string {
	if len(base)+len(over) == 0 {
		return nil
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}

// readCRD reads one file of dir as a CustomResourceDefinition of Datafleet's group.
func readCRD(dir fs.FS, name string) (*unstructured.Unstructured, error) {
	f, err := dir.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(bounded.Reader(f, maxCRD))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &crd.Object); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	if crd.GetAPIVersion() != "apiextensions.k8s.io/v1" || crd.GetKind() != "CustomResourceDefinition" || group != v1alpha1.GroupVersion.Group {
		return nil, fmt.Errorf("%s is not a CustomResourceDefinition of %s (%s %s of group %q): refused",
			path.Base(name), v1alpha1.GroupVersion.Group, crd.GetAPIVersion(), crd.GetKind(), group)
	}
	return crd, nil
}

func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
