package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The status view against a real API server: each instance's phase, pods with the roles and
// states its status gives, its newest completed backup's age (not a failed or older one), and the
// days to its version's sundown; with the agents' figures as they serve them, the lag of each
// replica (from its primary) and each pod's connections.
func TestStatusSummarisesEachInstance(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	sundown := metav1.NewTime(now.Add(45*24*time.Hour + time.Hour))
	create := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	create(&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "postgres",
		Versions: []v1alpha1.CatalogVersion{{Version: "17", Image: "pg:17", Default: true, Sundown: &sundown}}}})
	orders := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17"}}
	create(orders)
	orders.Status = v1alpha1.ServiceInstanceStatus{Phase: v1alpha1.PhaseReady, Version: "17", Replicas: 2, ReadyReplicas: 2, CurrentPrimary: "orders-1",
		Members:         []v1alpha1.Member{{Name: "orders-0", Role: "replica", State: "streaming (synchronous)"}, {Name: "orders-1", Role: "primary"}},
		PendingRestarts: []v1alpha1.PendingRestart{{Reason: "AgentUpgrade", Message: "a new agent"}}}
	if err := c.Status().Update(ctx, orders); err != nil {
		t.Fatal(err)
	}
	create(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "events"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "4.0"}})
	for _, b := range []struct {
		name  string
		phase v1alpha1.BackupPhase
		ago   time.Duration
	}{{"old", v1alpha1.BackupCompleted, 30 * time.Hour}, {"newest", v1alpha1.BackupCompleted, 3 * time.Hour}, {"failed", v1alpha1.BackupFailed, time.Hour}} {
		backup := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: b.name},
			Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}}}
		create(backup)
		backup.Status.Phase, backup.Status.CompletionTime = b.phase, &metav1.Time{Time: now.Add(-b.ago)}
		if err := c.Status().Update(ctx, backup); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := Status(ctx, c, "shop", "", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].Name != "orders" {
		t.Fatalf("rows: %+v", rows)
	}
	// What the agents of orders serve (their text format, as scraped).
	applyFigures(&rows[1], map[string]families{
		"orders-1": parse(t, `datafleet_postgres_connections{state="active"} 2
datafleet_postgres_connections{state="idle"} 5
datafleet_postgres_replication_lag_bytes{replica="orders-0"} 4096
datafleet_postgres_replication_lag_seconds{replica="orders-0"} 0.25
datafleet_agent_engine_restarts_total 1
`),
		"orders-0": parse(t, `datafleet_postgres_connections{state="active"} 1
datafleet_postgres_replay_lag_bytes 0
datafleet_agent_engine_restarts_total 0
`),
	})
	rows[0].FiguresNote = "reading the scrape token (Secret datafleet-system/datafleet-scrape-token): forbidden"
	var out bytes.Buffer
	if err := PrintStatus(&out, rows, now); err != nil {
		t.Fatal(err)
	}
	want := `shop/events   rabbitmq 4.0   -   0/0 ready
last backup: none   days to sundown: none
POD   ROLE   STATE   LAG   CONNECTIONS   ENGINE RESTARTS
(no lag or connections: reading the scrape token (Secret datafleet-system/datafleet-scrape-token): forbidden)

shop/orders   postgres 17   Ready   2/2 ready   primary orders-1
last backup: 3h ago   days to sundown: 45 days   pending restarts: AgentUpgrade
POD        ROLE      STATE                     LAG              CONNECTIONS   ENGINE RESTARTS
orders-0   replica   streaming (synchronous)   4096 B, 0.250s   1             0
orders-1   primary   -                         -                7             1
`
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if rows, err := Status(ctx, c, "shop", "orders", now); err != nil || len(rows) != 1 {
		t.Errorf("status of one instance: %v %+v", err, rows)
	}
	if _, err := Status(ctx, c, "shop", "missing", now); err == nil || !strings.Contains(err.Error(), "shop/missing") {
		t.Errorf("status of a missing instance: %v", err)
	}
}

func parse(t *testing.T, text string) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*dto.MetricFamily(f)
}
