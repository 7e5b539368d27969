package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The fleet view against a real API server: instances sorted by engine and version, with the days
// to their version's sundown.
func TestVersionsListsInstancesWithDaysToSundown(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	sundown := metav1.NewTime(time.Date(2027, 1, 20, 12, 0, 0, 0, time.UTC))
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{Engine: "postgres",
			Versions: []v1alpha1.CatalogVersion{{Version: "15", Image: "pg:15", Sundown: &sundown}, {Version: "17", Image: "pg:17", Default: true}}}},
	}
	for _, si := range []struct{ ns, name, engine, version string }{
		{"b", "orders", "postgres", "17"}, {"a", "ledger", "postgres", "15"}, {"a", "events", "rabbitmq", "4.0"}, {"b", "audit", "postgres", "15"},
	} {
		objs = append(objs, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: si.ns, Name: si.name},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: si.engine, Version: si.version}})
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := Versions(ctx, env.Client, "", now)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintVersions(&out, rows); err != nil {
		t.Fatal(err)
	}
	want := `ENGINE     VERSION   NAMESPACE   NAME     SUPPORT   SUNDOWN      DAYS LEFT
postgres   15        a           ledger   -         2027-01-20   60
postgres   15        b           audit    -         2027-01-20   60
postgres   17        b           orders   -         -            -
rabbitmq   4.0       a           events   -         -            -
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	rows, _ = Versions(ctx, env.Client, "rabbitmq", now)
	if len(rows) != 1 || rows[0].Name != "events" {
		t.Errorf("--engine rabbitmq: %+v", rows)
	}
}
