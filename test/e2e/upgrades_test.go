//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testUpgrades, through the chart's webhook and the operator on the cluster: an instance on a
// sundown version is refused by the API server, naming the versions offered; an instance inside
// its version's warning window shows the condition and the event; a PostgreSQL 15 instance with
// data is refused an in-place move to 17 (the catalog's path is blue/green) and upgraded blue/green
// through a backup restored into a new 17 instance, with every row; a plan downgrade the plan
// forbids is refused; a RabbitMQ 3.10 instance moves to 4.0 blue/green (checkRabbitMQUpgrade).
func testUpgrades(t *testing.T) {
	ctx := context.Background()
	day := func(days int) *metav1.Time {
		t := metav1.NewTime(time.Now().UTC().Add(time.Duration(days)*24*time.Hour + time.Hour))
		return &t
	}
	ensureCatalog(t, "postgres",
		v1alpha1.CatalogVersion{Version: "13", Image: env.images["postgres-15"], Sundown: day(-3)},
		v1alpha1.CatalogVersion{Version: "15", Image: env.images["postgres-15"], Sundown: day(20),
			Upgrades: []v1alpha1.UpgradePath{{To: "17", Method: v1alpha1.UpgradeBlueGreen}}},
		v1alpha1.CatalogVersion{Version: "17", Image: env.images["postgres-17"], Default: true})
	ns := testNamespace(t, "upgrades")

	err := env.c.Create(ctx, &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "13"}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "version 13 reached its sundown") ||
		!strings.Contains(err.Error(), "versions offered now: 15, 17") {
		t.Fatalf("creating an instance on a sundown version: want the API server to refuse it naming 15 and 17, got %v", err)
	}
	t.Logf("UPGRADES: refused: %v", err)

	db := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db15", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	createInstance(t, db)
	waitInstanceReady(t, db)
	if c := meta.FindStatusCondition(db.Status.Conditions, v1alpha1.ConditionVersionSupported); c == nil || c.Reason != "NearingSundown" ||
		!strings.Contains(c.Message, "(20 days left)") {
		t.Errorf("VersionSupported inside the warning window: %+v", c)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		events, err := eventsAbout(ctx, ns, "db15", "NearingSundown")
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return expect(false, "a NearingSundown warning event", fmt.Sprintf("%d NearingSundown events, none a warning", len(events)))
	})

	psql(t, ns, "db15-0", "CREATE ROLE reporting LOGIN PASSWORD 'reporting-secret'")
	psql(t, ns, "db15-0", "CREATE DATABASE shop")
	psqlIn(t, ns, "db15-0", "shop", "CREATE TABLE orders (id serial PRIMARY KEY, what text, at timestamptz DEFAULT now()); "+
		"CREATE INDEX ON orders (what); INSERT INTO orders (what) SELECT 'order ' || g FROM generate_series(1, 5000) g; "+
		"GRANT SELECT ON orders TO reporting")
	want := psqlIn(t, ns, "db15-0", "shop", "SELECT count(*) || ' ' || sum(id) || ' ' || md5(string_agg(what, ',' ORDER BY id)) FROM orders")

	// In place, 15 -> 17 is refused with the way to do it.
	update := func(inst *v1alpha1.ServiceInstance, change func(*v1alpha1.ServiceInstance)) error {
		// The operator writes the instance too (finalizer, annotations): retry on its conflicts.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := &v1alpha1.ServiceInstance{}
			if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), cur); err != nil {
				return err
			}
			change(cur)
			return env.c.Update(ctx, cur)
		})
	}
	err = update(db, func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "17" })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "15 -> 17 cannot be done in place") ||
		!strings.Contains(err.Error(), `target.newInstance {name: <new instance>, version: "17"}`) {
		t.Fatalf("spec.version 15 -> 17 in place: want a refusal that says how to move, got %v", err)
	}

	// Blue/green: a backup of 15 restored into a new instance on 17.
	minioStore(t, ns)
	if err := update(db, func(i *v1alpha1.ServiceInstance) {
		i.Spec.Backup = &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}
	}); err != nil {
		t.Fatal(err)
	}
	backupOf(t, ns, "before-17", "db15")
	t.Cleanup(func() { deleteBackups(t, ns) })
	start := time.Now()
	restoreOf(t, ns, "to-17", "before-17", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "db17", Version: "17"}}, "Completed")
	db17 := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db17", Namespace: ns}}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), db17) })
	waitInstanceReady(t, db17)
	t.Logf("UPGRADES: the blue/green restore into 17 took %s", time.Since(start).Round(time.Second))
	if db17.Status.Version != "17" {
		t.Errorf("the new instance runs %q, want 17", db17.Status.Version)
	}
	if v := psql(t, ns, "db17-0", "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Errorf("server_version_num %s on the new instance", v)
	}
	if got := psqlIn(t, ns, "db17-0", "shop", "SELECT count(*) || ' ' || sum(id) || ' ' || md5(string_agg(what, ',' ORDER BY id)) FROM orders"); got != want {
		t.Errorf("orders on 17: %q, on 15: %q", got, want)
	}
	if got := psqlIn(t, ns, "db17-0", "shop", "SELECT has_table_privilege('reporting', 'orders', 'SELECT'), "+
		"(SELECT count(*) FROM pg_indexes WHERE tablename = 'orders')"); got != "t|2" {
		t.Errorf("grant and indexes on 17: %q, want t|2", got)
	}
	// Indexes are rebuilt by the new server, not copied from the old one's files: an index scan
	// agrees with a sequential scan.
	const rangeQuery = "SELECT count(*) FROM orders WHERE what > 'order 4'"
	lastLine := func(out string) string { return out[strings.LastIndex(out, "\n")+1:] } // after psql's "SET"s
	if byIndex, bySeq := lastLine(psqlIn(t, ns, "db17-0", "shop", "SET enable_seqscan = off; "+rangeQuery)),
		lastLine(psqlIn(t, ns, "db17-0", "shop", "SET enable_indexscan = off; SET enable_bitmapscan = off; "+rangeQuery)); byIndex != bySeq || byIndex == "0" {
		t.Errorf("on 17 an index scan counts %s rows, a sequential scan %s", byIndex, bySeq)
	}

	// Plans: moving to a plan the current one does not list is refused.
	for _, p := range []*v1alpha1.ServicePlan{
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e-small"}, Spec: v1alpha1.ServicePlanSpec{Engine: "postgres", AllowedTransitions: []string{"e2e-large"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e-large"}, Spec: v1alpha1.ServicePlanSpec{Engine: "postgres"}},
	} {
		if err := env.c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.c.Delete(context.Background(), p) })
	}
	setPlan := func(plan string) error { return update(db17, func(i *v1alpha1.ServiceInstance) { i.Spec.Plan = plan }) }
	for _, plan := range []string{"e2e-small", "e2e-large"} {
		if err := setPlan(plan); err != nil {
			t.Fatalf("moving to plan %s: %v", plan, err)
		}
	}
	err = setPlan("e2e-small")
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "plan e2e-large does not allow moving to e2e-small") {
		t.Fatalf("a plan downgrade the plan forbids: got %v", err)
	}
	waitInstanceReady(t, db17)

	checkRabbitMQUpgrade(t, ns, update)
}

// checkRabbitMQUpgrade moves a RabbitMQ 3.10 instance to 4.0 blue/green, as the catalog's path
// says, and accounts for everything: the definitions move (a user with its password, a vhost, its
// permissions, a policy, an exchange, a quorum and a classic queue, a binding) and route on 4.0;
// the messages do not (a definitions backup has none): the 100 confirmed messages of the quorum
// queue are all still on the 3.10 instance, which the move leaves untouched, and none on 4.0.
func checkRabbitMQUpgrade(t *testing.T, ns string, update func(*v1alpha1.ServiceInstance, func(*v1alpha1.ServiceInstance)) error) {
	t.Helper()
	ensureCatalog(t, "rabbitmq",
		v1alpha1.CatalogVersion{Version: "3.10", Image: env.images["rabbitmq-3.10"],
			Upgrades: []v1alpha1.UpgradePath{{To: "4.0", Method: v1alpha1.UpgradeBlueGreen}}},
		v1alpha1.CatalogVersion{Version: "4.0", Image: env.images["rabbitmq-4.0"], Default: true})
	old := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "mq310", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "3.10", DeletionPolicy: v1alpha1.DeletionPolicyDelete,
			Backup: &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}}}
	createInstance(t, old)
	waitInstanceReady(t, old)
	_, must := rabbitManagement(t, old)
	must(http.MethodPut, "/api/vhosts/shop", `{}`)
	must(http.MethodPut, "/api/users/shop-app", `{"password":"shop-app-secret","tags":""}`)
	must(http.MethodPut, "/api/permissions/shop/shop-app", `{"configure":"^shop\\.","write":".*","read":".*"}`)
	must(http.MethodPut, "/api/policies/shop/bounded", `{"pattern":"^shop\\.audit$","definition":{"max-length":500},"apply-to":"queues"}`)
	must(http.MethodPut, "/api/exchanges/shop/shop.events", `{"type":"topic","durable":true}`)
	must(http.MethodPut, "/api/queues/shop/shop.orders", `{"durable":true,"arguments":{"x-queue-type":"quorum"}}`)
	must(http.MethodPut, "/api/queues/shop/shop.audit", `{"durable":true,"arguments":{"x-queue-type":"classic"}}`)
	must(http.MethodPost, "/api/bindings/shop/e/shop.events/q/shop.orders", `{"routing_key":"order.*"}`)
	appURL := func(inst *v1alpha1.ServiceInstance) string {
		return fmt.Sprintf("amqp://shop-app:shop-app-secret@%s/shop", serviceAddress(t, ns, inst.Name, 5672))
	}
	publishConfirmed(t, appURL(old), "shop.orders", 100, amqp.Table{"x-queue-type": "quorum"})

	// In place, 3.10 -> 4.0 is refused with the way to do it.
	err := update(old, func(i *v1alpha1.ServiceInstance) { i.Spec.Version = "4.0" })
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "3.10 -> 4.0 cannot be done in place") {
		t.Fatalf("spec.version 3.10 -> 4.0 in place: want a refusal that says how to move, got %v", err)
	}

	backupOf(t, ns, "mq-before-4", old.Name)
	start := time.Now()
	restoreOf(t, ns, "mq-to-4", "mq-before-4", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "mq40", Version: "4.0"}}, "Completed")
	next := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "mq40", Namespace: ns}}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), next) })
	waitInstanceReady(t, next)
	t.Logf("UPGRADES: the blue/green restore of rabbitmq 3.10 into 4.0 took %s", time.Since(start).Round(time.Second))

	call, _ := rabbitManagement(t, next)
	if code, answer := call(http.MethodGet, "/api/overview?columns=rabbitmq_version", ""); code != http.StatusOK || !strings.Contains(answer, `"rabbitmq_version":"4.0`) {
		t.Fatalf("the new instance's version: %d %s", code, answer)
	}
	for p, want := range map[string]string{
		"/api/permissions/shop/shop-app": `"configure":"^shop\\.`,
		"/api/policies/shop/bounded":     `"max-length":500`,
		"/api/queues/shop/shop.orders":   `"type":"quorum"`,
		"/api/queues/shop/shop.audit":    `"type":"classic"`,
	} {
		if code, answer := call(http.MethodGet, p, ""); code != http.StatusOK || !strings.Contains(answer, want) {
			t.Fatalf("on 4.0 %s: %d %s, want %s", p, code, answer, want)
		}
	}
	// The user logs in with its own password (its hash moved) and the binding routes.
	conn, ch, err := amqpChannel(appURL(next))
	if err != nil {
		t.Fatalf("shop-app on 4.0 with its password: %v", err)
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err := ch.PublishWithContext(context.Background(), "shop.events", "order.created", true, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("routed on 4.0")}); err != nil {
		t.Fatal(err)
	}
	if c := <-confirms; !c.Ack {
		t.Fatal("the message routed on 4.0 was not confirmed")
	}
	onNew := consumeAll(t, appURL(next), "shop.orders")
	if len(onNew) != 1 || !onNew["routed on 4.0"] {
		t.Fatalf("shop.orders on 4.0 held %d messages %v, want only the one routed there: messages do not move", len(onNew), onNew)
	}
	onOld := consumeAll(t, appURL(old), "shop.orders")
	for i := range 100 {
		if !onOld[strconv.Itoa(i)] {
			t.Fatalf("message %d of the 100 confirmed on 3.10 is not there after the move (%d are)", i, len(onOld))
		}
	}
	t.Logf("UPGRADES: rabbitmq 3.10 -> 4.0 blue/green: the user, vhost, permissions, policy, exchange, quorum and classic queues and binding moved and route; the 100 confirmed messages stayed on 3.10, none on 4.0")
}
