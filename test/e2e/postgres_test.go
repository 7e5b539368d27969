//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testPostgresSingleInstance runs inside TestOperator, with the operator installed.
func testPostgresSingleInstance(t *testing.T) {
	ctx := context.Background()
	// Both catalog entries' images run under the agent: this instance runs 17, the HA test 15.
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"]},
		v1alpha1.CatalogVersion{Version: "17", Image: env.images["postgres-17"], Default: true})
	ns := testNamespace(t, "postgres")
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17",
			Storage:        &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			Parameters:     map[string]string{"work_mem": "8MB"},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	if err := env.c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	waitInstanceReady(t, inst)
	psql(t, ns, "orders-0", "CREATE TABLE orders (id int PRIMARY KEY, what text); INSERT INTO orders VALUES (1, 'kept')")
	if got := psql(t, ns, "orders-0", "SHOW work_mem"); got != "8MB" {
		t.Errorf("work_mem = %q: the instance's parameters were not applied", got)
	}

	// The row survives losing the pod: the StatefulSet brings it back on the same volume.
	waitPodReplaced(t, deletePod(t, ns, "orders-0"))
	if got := psql(t, ns, "orders-0", "SELECT what FROM orders WHERE id = 1"); got != "kept" {
		t.Errorf("after the pod was replaced the row reads %q", got)
	}
	if got := psql(t, ns, "orders-0", "SHOW server_version_num"); !strings.HasPrefix(got, "17") {
		t.Errorf("server_version_num %s, want 17xxxx", got)
	}

	// Storage expansion: the volume grows online, the pod is not replaced, the data stays.
	expandStorage(t, inst, "2Gi")
	if got := psql(t, ns, "orders-0", "SELECT what FROM orders WHERE id = 1"); got != "kept" {
		t.Errorf("after the expansion the row reads %q", got)
	}

	// With deletion protection on, the namespace cannot be deleted (it would take the volume).
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.DeletionProtection = true })
	testenv.Eventually(t, time.Minute, func() error {
		err := env.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		return expect(err != nil && strings.Contains(err.Error(), "deletion protection (orders)"), "the namespace's deletion is refused", fmt.Sprint(err))
	})
	var nsObj corev1.Namespace
	if err := env.c.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil || !nsObj.DeletionTimestamp.IsZero() {
		t.Fatalf("the namespace is being deleted: %v %v", nsObj.DeletionTimestamp, err)
	}
	if got := psql(t, ns, "orders-0", "SELECT what FROM orders WHERE id = 1"); got != "kept" {
		t.Errorf("after the refused namespace deletion the row reads %q", got)
	}
	t.Logf("POSTGRES: deleting the namespace of a protected instance was refused")
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.DeletionProtection = false })

	// deletionPolicy Delete removes the instance with its volume.
	if err := env.c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), &v1alpha1.ServiceInstance{})
		var pvcs corev1.PersistentVolumeClaimList
		if lerr := env.c.List(ctx, &pvcs, client.InNamespace(ns)); lerr != nil {
			return lerr
		}
		return expect(apierrors.IsNotFound(err) && len(pvcs.Items) == 0, "the instance and its volume are gone",
			fmt.Sprintf("instance: %v, claims: %d", err, len(pvcs.Items)))
	})
}

func waitInstanceReady(t *testing.T, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	waitInstance(t, inst, waitTimeout, "the instance is Ready", func() (bool, string) {
		return inst.Status.Phase == v1alpha1.PhaseReady, fmt.Sprintf("phase %s, conditions %+v", inst.Status.Phase, inst.Status.Conditions)
	})
}

// waitInstance re-reads inst until ok says it is as wanted; why explains what was seen instead.
func waitInstance(t *testing.T, inst *v1alpha1.ServiceInstance, timeout time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		good, why := ok()
		return expect(good, what, why)
	})
}

// ensureCatalog gives the engine's VersionCatalog (the chart's) the test's versions, and puts the
// chart's back afterwards.
func ensureCatalog(t *testing.T, engineName string, versions ...v1alpha1.CatalogVersion) {
	t.Helper()
	ctx := context.Background()
	vc := &v1alpha1.VersionCatalog{}
	if err := env.c.Get(ctx, client.ObjectKey{Name: engineName}, vc); err != nil {
		t.Fatalf("the chart should have installed the %s VersionCatalog: %v", engineName, err)
	}
	shipped := vc.Spec
	vc.Spec = v1alpha1.VersionCatalogSpec{Engine: engineName, Versions: versions, WarningDays: shipped.WarningDays}
	if err := env.c.Update(ctx, vc); err != nil {
		t.Fatalf("setting the %s catalog's versions: %v", engineName, err)
	}
	t.Cleanup(func() {
		vc := &v1alpha1.VersionCatalog{}
		if err := env.c.Get(ctx, client.ObjectKey{Name: engineName}, vc); err != nil {
			t.Error(err)
			return
		}
		vc.Spec = shipped
		if err := env.c.Update(ctx, vc); err != nil {
			t.Errorf("putting the chart's %s catalog back: %v", engineName, err)
		}
	})
}

// psql runs SQL as the superuser through the pod's Unix socket and returns the output, trimmed.
func psql(t *testing.T, ns, pod, sql string) string {
	t.Helper()
	return psqlIn(t, ns, pod, "postgres", sql)
}

// psqlIn runs SQL in a database.
func psqlIn(t *testing.T, ns, pod, database, sql string) string {
	t.Helper()
	req := env.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "postgres", Command: []string{"psql", "-h", "/var/run/postgresql",
			"-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(env.cfg, "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}
