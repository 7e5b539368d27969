// Package upgrade tests upgrading Datafleet's API from the previous release: its CRDs, and the
// objects stored under them, on a real API server (envtest: the storage and validation that decide
// whether an object survives a CRD upgrade are the API server's own, as on any cluster).
package upgrade_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// objectsOfThePreviousRelease are what a platform team and its tenants created under the previous
// release besides its samples: a store, a backup, a plan, a restore and a service plan.
const objectsOfThePreviousRelease = `
apiVersion: datafleet.dev/v1alpha1
kind: BackupStore
metadata: {name: minio, namespace: shop}
spec:
  url: s3://backups?endpoint=http://minio.storage.svc:9000&use_path_style=true&region=us-east-1
  prefix: team-a
  credentialsSecretRef: {name: store-credentials}
  encryption:
    keySecretRef: {name: backup-key, key: key}
---
apiVersion: datafleet.dev/v1alpha1
kind: Backup
metadata: {name: orders-before-migration, namespace: shop}
spec:
  instanceRef: {name: orders-db}
  storeRef: {name: minio}
---
apiVersion: datafleet.dev/v1alpha1
kind: BackupPlan
metadata: {name: nightly, namespace: shop}
spec:
  instanceRef: {name: orders-db}
  schedule: "30 2 * * *"
  timeZone: Europe/Paris
  retention: {count: 14, maxAge: 720h}
  drill: {schedule: "0 6 * * 1"}
---
apiVersion: datafleet.dev/v1alpha1
kind: Restore
metadata: {name: orders-clone, namespace: shop}
spec:
  backupRef: {name: orders-before-migration}
  target:
    newInstance: {name: orders-db-clone, version: "17"}
---
apiVersion: datafleet.dev/v1alpha1
kind: ServicePlan
metadata: {name: pg-small}
spec:
  engine: postgres
  replicas: 1
  storageSize: 5Gi
  resources: {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 512Mi}}
  allowedTransitions: [pg-medium]
  limits: {minReplicas: 1, maxReplicas: 3, maxStorageSize: 50Gi}
---
apiVersion: datafleet.dev/v1alpha1
kind: ServiceInstance
metadata: {name: orders-db, namespace: shop}
spec:
  engine: postgres
  version: "15"
  plan: pg-small
  maintenanceWindow: {days: [Sat], startTime: "02:00", duration: 2h, timeZone: Europe/Berlin}
`

// The previous release's CRDs are installed and its objects created; then this release's CRDs
// are applied over them as `kubectl apply` (or a Helm upgrade) does. Every object reads back
// exactly as it was stored, spec and status (no field pruned, none defaulted differently), is
// still valid (an update of it as it is succeeds: no new required field, no stricter rule), and
// the CRDs still store only v1alpha1, so no storage migration is due.
func TestObjectsOfThePreviousReleaseSurviveTheCRDUpgrade(t *testing.T) {
	old := t.TempDir()
	for name, b := range testenv.PreviousReleaseFiles(t, "charts/datafleet/crds") {
		if err := os.WriteFile(filepath.Join(old, filepath.Base(name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := testenv.StartWithCRDs(t, old)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, sample := range testenv.PreviousReleaseFiles(t, "docs/samples") {
		objs = append(objs, decode(t, string(sample))...)
	}
	objs = append(objs, decode(t, objectsOfThePreviousRelease)...)
	stored := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %s under the previous release's CRDs: %v", describe(o), err)
		}
		stored[describe(o)] = o
	}
	// What the previous operator wrote: a status, on the instance.
	si := stored["ServiceInstance shop/orders-db"]
	si.Object["status"] = map[string]any{"phase": "Ready", "version": "15", "readyReplicas": int64(1), "observedGeneration": int64(1),
		"pendingRestarts": []any{map[string]any{"reason": "AgentUpgrade", "message": "the pods of orders-db run the agent from operator:1; the agent from operator:2 comes"}}}
	if err := c.Status().Update(ctx, si); err != nil {
		t.Fatalf("writing the previous operator's status: %v", err)
	}

	current := filepath.Join(testenv.RepoRoot(), "charts", "datafleet", "crds")
	files, err := filepath.Glob(filepath.Join(current, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("this release's CRDs in %s: %v", current, err)
	}
	for _, f := range files {
		upgradeCRD(t, c, f)
	}

	for key, before := range stored {
		after := &unstructured.Unstructured{}
		after.SetGroupVersionKind(before.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(before), after); err != nil {
			t.Fatalf("%s after the CRD upgrade: %v", key, err)
		}
		for _, field := range []string{"spec", "status"} {
			if !reflect.DeepEqual(before.Object[field], after.Object[field]) {
				b, _ := json.Marshal(before.Object[field])
				a, _ := json.Marshal(after.Object[field])
				t.Errorf("%s: %s changed by the CRD upgrade:\nbefore %s\nafter  %s", key, field, b, a)
			}
		}
		if err := c.Update(ctx, after); err != nil {
			t.Errorf("%s, as stored by the previous release, is refused by this release's schema: %v", key, err)
		}
	}
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := c.List(ctx, &crds); err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds.Items {
		if v := crd.Status.StoredVersions; !reflect.DeepEqual(v, []string{"v1alpha1"}) {
			t.Errorf("%s stores versions %v: a storage migration is due (docs/upgrades.md)", crd.Name, v)
		}
	}
}

// upgradeCRD replaces the stored CRD's spec with the file's, as `kubectl apply` does, and waits
// until the API server serves it.
func upgradeCRD(t *testing.T, c client.Client, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := &apiextensionsv1.CustomResourceDefinition{}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(want); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	ctx := context.Background()
	testenv.Eventually(t, time.Minute, func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, crd); err != nil {
			return err // a kind the previous release did not have would be created: none yet
		}
		crd.Spec = want.Spec
		return c.Update(ctx, crd)
	})
	testenv.Eventually(t, time.Minute, func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, crd); err != nil {
			return err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("%s not established: %+v", crd.Name, crd.Status.Conditions)
	})
}

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func decode(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(docs), 4096)
	for {
		o := &unstructured.Unstructured{}
		if err := d.Decode(&o.Object); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		if len(o.Object) > 0 {
			out = append(out, o)
		}
	}
}

func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetKind() + " " + o.GetName()
	}
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}
