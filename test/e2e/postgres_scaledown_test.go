//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testPostgresScaleDown shrinks a 2-pod instance whose primary is the pod the StatefulSet
// removes, with a client writing: the operator switches over to the member that stays before
// the pod goes (the lease is never held by a pod being deleted), every confirmed write is kept,
// and the departed member's volume goes with it; a volume retained from before stays.
func testPostgresScaleDown(t *testing.T) {
	ctx := context.Background()
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"], Default: true})
	ns := testNamespace(t, "postgres-shrink")
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "shrink", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Replicas: ptr(int32(2)), Primary: "shrink-1",
			Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")}, DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	createInstance(t, inst)
	waitInstanceReady(t, inst)
	waitMembers(t, inst, "shrink-1", "streaming")
	psql(t, ns, "shrink-1", "CREATE ROLE app LOGIN PASSWORD '"+e2ePassword+"'; CREATE TABLE ledger (id int PRIMARY KEY, what text); ALTER TABLE ledger OWNER TO app")
	rw := serviceAddress(t, ns, "shrink", 5432)
	queryEventually(t, rw, "SELECT count(*) FROM ledger", new(int))

	// A volume a StatefulSet retained from before (a member this operator did not drain): kept.
	stay := &corev1.PersistentVolumeClaim{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data-shrink-0"}, stay); err != nil {
		t.Fatal(err)
	}
	retained := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-shrink-5", Namespace: ns, Labels: stay.Labels},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: stay.Spec.AccessModes, StorageClassName: stay.Spec.StorageClassName,
			Resources: stay.Spec.Resources}}
	if err := env.c.Create(ctx, retained); err != nil {
		t.Fatal(err)
	}

	w := startWriter(ctx, rw, 0)
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Replicas, s.Primary = ptr(int32(1)), "" })
	leaving := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shrink-1", Namespace: ns}}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: postgres.LeaseName(inst), Namespace: ns}}
	deleting := false
	testenv.Eventually(t, waitTimeout, func() error {
		err := env.c.Get(ctx, client.ObjectKeyFromObject(leaving), leaving)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil || leaving.DeletionTimestamp == nil {
			return expect(false, "shrink-1's pod is removed", fmt.Sprint(err))
		}
		deleting = true
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(lease), lease); err != nil {
			return err
		}
		if holder := primary.Read(lease).Holder; holder == leaving.Name {
			t.Fatalf("shrink-1's pod is being deleted while it holds the primary lease: the scale-down did not switch over first")
		}
		return expect(false, "shrink-1's pod is gone", "being deleted, the lease with "+primary.Read(lease).Holder)
	})
	if !deleting {
		t.Log("shrink-1's pod went between two looks: its lease holder was not seen while it was deleted")
	}
	waitInstance(t, inst, waitTimeout, "shrink-0 the only member, primary, Ready", func() (bool, string) {
		ready := meta.IsStatusConditionTrue(inst.Status.Conditions, v1alpha1.ConditionReady)
		return ready && inst.Status.CurrentPrimary == "shrink-0" && len(inst.Status.Members) == 1,
			fmt.Sprintf("ready %v, currentPrimary %s, members %+v", ready, inst.Status.CurrentPrimary, inst.Status.Members)
	})
	report := w.stop()
	w.checkNoneLost(t, rw)
	waitGone(t, "the departed member's volume", &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-shrink-1", Namespace: ns}})
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(retained), retained); err != nil || !retained.DeletionTimestamp.IsZero() {
		t.Fatalf("the volume retained from before the scale-down: %v, deleting %v; want it kept", err, retained.DeletionTimestamp)
	}
	t.Logf("SCALE-DOWN: 2 -> 1 with shrink-1 the primary: switched over to shrink-0 before its pod went, every confirmed write kept; %s", report)
}
