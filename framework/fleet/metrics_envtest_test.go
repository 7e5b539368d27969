package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/fleet"
	"github.com/datafleet-dev/datafleet/test/promtest"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The fleet's figures are what the objects say: each is checked against the status the test gave
// an instance, its catalog, its bindings, a plan, its last backup and its last drill.
func TestTheFleetsFiguresAreTheObjects(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	for _, ns := range []string{"shop", "apps"} {
		create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	sundown := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	create(t, c, &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "postgres",
		Versions: []v1alpha1.CatalogVersion{{Version: "15", Image: "postgres:15", Sundown: &metav1.Time{Time: sundown}}, {Version: "17", Image: "postgres:17", Default: true}}}})

	orders := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Plan: "small"}}
	create(t, c, orders)
	notAfter := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	orders.Status = v1alpha1.ServiceInstanceStatus{Phase: v1alpha1.PhaseReady, Version: "15", Replicas: 3, ReadyReplicas: 2, CurrentPrimary: "orders-1",
		Conditions:      []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", LastTransitionTime: metav1.Now()}},
		PendingRestarts: []v1alpha1.PendingRestart{{Reason: "ImagePatch", Message: "a patch"}},
		Members: []v1alpha1.Member{{Name: "orders-0", Role: "replica", State: "streaming"}, {Name: "orders-1", Role: "primary"},
			{Name: "orders-2", State: "not answering"}},
		TLS: &v1alpha1.InstanceTLSStatus{CAConfigMap: "orders-ca", ServerCertificateNotAfter: &metav1.Time{Time: notAfter}}}
	if err := c.Status().Update(ctx, orders); err != nil {
		t.Fatal(err)
	}
	create(t, c, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "events"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "4.0"}})
	issued := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for _, b := range []struct{ ns, name string }{{"shop", "app"}, {"apps", "report"}} {
		sb := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: b.name},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "orders", Namespace: "shop"}}}
		create(t, c, sb)
		if b.ns == "apps" {
			sb.Status.CredentialsIssued = &metav1.Time{Time: issued}
			if err := c.Status().Update(ctx, sb); err != nil {
				t.Fatal(err)
			}
		}
	}

	completed := time.Date(2026, 12, 4, 2, 0, 30, 0, time.UTC)
	backup := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-nightly-1"},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}}}
	create(t, c, backup)
	backup.Status.Phase, backup.Status.SizeBytes = v1alpha1.BackupCompleted, 123456
	backup.Status.CompletionTime = &metav1.Time{Time: completed}
	if err := c.Status().Update(ctx, backup); err != nil {
		t.Fatal(err)
	}
	plan := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly"},
		Spec: v1alpha1.BackupPlanSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, Schedule: "0 2 * * *"}}
	create(t, c, plan)
	drillStart := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	plan.Status.LastSuccessfulBackup = backup.Name
	plan.Status.LastDrill = &v1alpha1.DrillStatus{Backup: backup.Name, Restore: "drill", Result: "Failed",
		StartTime: &metav1.Time{Time: drillStart}, CompletionTime: &metav1.Time{Time: drillStart.Add(95 * time.Second)},
		TargetTime: &metav1.Time{Time: drillStart.Add(2 * time.Second)}, RecoveryPoint: &metav1.Duration{Duration: 61 * time.Second},
		RecoveryTime: &metav1.Duration{Duration: 9 * time.Second}}
	if err := c.Status().Update(ctx, plan); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&fleet.Collector{Reader: c})
	m, err := promtest.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	id := []string{"namespace=shop", "serviceinstance=orders", "engine=postgres"}
	with := func(labels ...string) []string { return append(append([]string(nil), id...), labels...) }
	planID := []string{"namespace=shop", "backupplan=nightly", "serviceinstance=orders"}
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"datafleet_instance_info", with("version=15", "serviceplan=small", "phase=Ready"), 1},
		{"datafleet_instance_info", []string{"namespace=shop", "serviceinstance=events", "engine=rabbitmq", "version=4.0", "serviceplan=", "phase="}, 1},
		{"datafleet_instance_ready", id, 1},
		{"datafleet_instance_ready", []string{"namespace=shop", "serviceinstance=events", "engine=rabbitmq"}, 0},
		{"datafleet_instance_replicas", id, 3},
		{"datafleet_instance_ready_replicas", id, 2},
		{"datafleet_instance_primary", with("pod=orders-1"), 1},
		{"datafleet_instance_pending_restart", with("reason=ImagePatch"), 1},
		{"datafleet_instance_version_sundown_timestamp_seconds", with("version=15"), float64(sundown.Unix())},
		{"datafleet_instance_certificate_expiry_timestamp_seconds", with("certificate=server"), float64(notAfter.Unix())},
		{"datafleet_instance_bindings", with("ready=false"), 2},
		{"datafleet_instance_member", with("pod=orders-0", "role=replica", "state=streaming"), 1},
		{"datafleet_instance_member", with("pod=orders-1", "role=primary", "state="), 1},
		{"datafleet_instance_member", with("pod=orders-2", "role=", "state=not answering"), 1},
		{"datafleet_binding_credentials_issued_timestamp_seconds",
			[]string{"namespace=apps", "servicebinding=report", "serviceinstance=orders", "engine=postgres"}, float64(issued.Unix())},
		{"datafleet_backupplan_interval_seconds", planID, 86400},
		{"datafleet_backupplan_suspended", planID, 0},
		{"datafleet_backupplan_last_success_timestamp_seconds", planID, float64(completed.Unix())},
		{"datafleet_backupplan_last_success_size_bytes", planID, 123456},
		{"datafleet_backupplan_drill_passed", planID, 0},
		{"datafleet_backupplan_drill_duration_seconds", planID, 95},
		{"datafleet_backupplan_drill_recovery_point_seconds", planID, 61},
		{"datafleet_backupplan_drill_recovery_time_seconds", planID, 9},
		{"datafleet_backupplan_drill_last_timestamp_seconds", planID, float64(drillStart.Add(95 * time.Second).Unix())},
	} {
		if v, ok := m.Value(want.name, want.labels...); !ok || v != want.value {
			t.Errorf("%s%v = %v (present: %v), want %v", want.name, want.labels, v, ok, want.value)
		}
	}
	if len(m.Series("datafleet_instance_version_sundown_timestamp_seconds")) != 1 || len(m.Series("datafleet_instance_primary")) != 1 ||
		len(m.Series("datafleet_binding_credentials_issued_timestamp_seconds")) != 1 {
		t.Errorf("figures for what the objects do not say; served:\n%s", m)
	}
	if t.Failed() {
		t.Logf("served:\n%s", m)
	}
}

func create(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}
