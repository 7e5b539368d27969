package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// connect, run as a user runs it against a real API server, refuses with the reason a binding
// without its Secret yet, one of an engine it has no client for, and one whose Service has no
// ready pod, before it forwards anything; nothing it prints holds the password. The connection
// itself (the port-forward and psql) is proven on the local cluster (test/e2e checkConnect).
func TestConnectSaysWhyItCannot(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	kubeconfig := writeKubeconfig(t, env)
	create := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	binding := func(name, secret string) {
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "orders"}}}
		create(b)
		if secret != "" {
			b.Status.Binding = &v1alpha1.BindingSecretReference{Name: secret}
			if err := c.Status().Update(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	secret := func(name, kind string) {
		create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, StringData: map[string]string{
			"type": kind, "host": "orders.shop.svc", "port": "5432", "username": "sb_app_1", "password": "s3cret-never-shown", "database": "app"}})
	}
	binding("pending", "")
	secret("queue", "rabbitmq")
	binding("queue", "queue")
	secret("app", "postgresql")
	binding("app", "app")
	create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "orders"}, Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromString("postgres")}}}})
	for _, k := range []struct{ binding, want string }{
		{"pending", "servicebinding shop/pending has no Secret yet (it is not Ready yet)"},
		{"queue", `connect opens psql on PostgreSQL bindings; servicebinding shop/queue is of type "rabbitmq"`},
		{"app", "service shop/orders has no ready pod to connect to"},
		{"missing", `servicebindings.datafleet.dev "missing" not found`},
	} {
		var out bytes.Buffer
		err := run(ctx, []string{"connect", k.binding, "--kubeconfig", kubeconfig, "-n", "shop", "--", "-c", "SELECT 1"}, &out)
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("connect %s: %v, want %q", k.binding, err, k.want)
		}
		if strings.Contains(out.String()+err.Error(), "s3cret-never-shown") {
			t.Errorf("connect %s showed the password", k.binding)
		}
	}
	if err := run(ctx, []string{"status", "--kubeconfig", kubeconfig, "--", "x"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "status takes no arguments after --") {
		t.Errorf("-- on another command: %v", err)
	}
}

// psql's environment carries the binding's connection through the forwarded port, and none of
// the caller's PG variables, which could send it elsewhere.
func TestConnectEnvironment(t *testing.T) {
	t.Setenv("PGSERVICE", "elsewhere")
	t.Setenv("PGPASSFILE", "/tmp/other")
	env := clientEnv(connection{user: "sb_app_1", password: "pw", database: "app"}, 41234, "/tmp/x/ca.crt")
	var pg []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "PG") {
			pg = append(pg, kv)
		}
	}
	want := "PGHOST=127.0.0.1 PGPORT=41234 PGUSER=sb_app_1 PGPASSWORD=pw PGDATABASE=app PGAPPNAME=kubectl-datafleet PGSSLMODE=verify-ca PGSSLROOTCERT=/tmp/x/ca.crt"
	if got := strings.Join(pg, " "); got != want {
		t.Fatalf("psql's PG variables:\n%s\nwant\n%s", got, want)
	}
}
