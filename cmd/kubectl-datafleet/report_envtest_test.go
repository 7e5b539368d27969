package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// `kubectl datafleet report` against a real API server: the bundle holds the instance, its
// children, the Datafleet objects that name it (and not another instance's), the events about
// them; Secrets hold their keys and sizes only; no secret value of the namespace, no password in
// an event's message and no managed fields are anywhere in it. The pods' logs cannot be read
// here (there is no kubelet): the README lists each pod's, with the reason. Logs are redacted as
// the rest: shown with a stand-in log reader returning a line with a binding's password and a URI's credentials (the
// e2e's observability step reads real logs).
func TestReportBundlesTheInstanceRedacted(t *testing.T) {
	env := testenv.Start(t)
	c, ctx := env.Client, context.Background()
	kubeconfig := writeKubeconfig(t, env)
	create := func(o client.Object) client.Object {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	child := names.Standard("postgres", "orders", "17")
	const childSecret, bindingPassword = "child-s3cret-value", "binding-pw-9z8y"
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	orders := create(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17"}})
	create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-rw", Labels: child},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}})
	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-superuser", Labels: child,
		Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"password":"` + childSecret + `"}}`}},
		Data: map[string][]byte{"password": []byte(childSecret), "username": []byte("postgres")}})
	// orders-0 is on a node that no kubelet serves, orders-1 on none yet.
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-0", Labels: child},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "postgres", Image: "postgres:17"}}}})
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-1", Labels: child},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "postgres:17"}}}})
	// The binding's Secret is the application's, not a child: its values are redacted all the same.
	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-db"},
		Data: map[string][]byte{"password": []byte(bindingPassword), "uri": []byte("postgresql://app:" + bindingPassword + "@orders-rw:5432/app")}})
	create(&v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "orders"}, SecretName: "app-db"}})
	create(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-1"},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}}})
	create(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "carts-1"},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "carts"}}})
	event := func(name, kind, objName string, uid string, message string) {
		create(&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: "shop", Name: objName, UID: types.UID(uid)},
			Reason:         "Tested", Message: message, Type: corev1.EventTypeWarning, LastTimestamp: metav1.Now(), Count: 1})
	}
	event("orders.1", "ServiceInstance", "orders", string(orders.GetUID()), "connection failed: password="+bindingPassword+" rejected")
	event("carts.1", "ServiceInstance", "carts", "carts-uid", "about another instance")

	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.tar.gz")
	var out bytes.Buffer
	if err := run(ctx, []string{"report", "orders", "-o", file, "-n", "shop", "--kubeconfig", kubeconfig}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "written to "+file) {
		t.Fatalf("the command said %q", out.String())
	}
	files := testenv.ReadTarball(t, file)
	for _, want := range []string{"README.txt", "instance.yaml", "services/orders-rw.yaml", "secrets/orders-superuser.yaml",
		"pods/orders-0.yaml", "servicebindings/app.yaml", "backups/orders-1.yaml", "events.txt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the bundle has no %s; it has %v", want, slices.Sorted(maps.Keys(files)))
		}
	}
	if _, ok := files["backups/carts-1.yaml"]; ok {
		t.Error("the bundle holds another instance's backup")
	}
	if s := files["secrets/orders-superuser.yaml"]; !strings.Contains(s, "password: REDACTED (18 bytes)") {
		t.Errorf("the child Secret in the bundle:\n%s", s)
	}
	if e := files["events.txt"]; !strings.Contains(e, "ServiceInstance/orders  connection failed: password=REDACTED rejected") || strings.Contains(e, "another instance") {
		t.Errorf("events.txt:\n%s", e)
	}
	if r := files["README.txt"]; !strings.Contains(r, "log of orders-0/postgres: ") ||
		!strings.Contains(r, "logs of orders-1: the pod is not scheduled on a node") || !strings.Contains(r, "the operator's pods: none in namespace datafleet-system") {
		t.Errorf("the README does not list the logs it could not read:\n%s", r)
	}
	noSecrets := func(files map[string]string) {
		t.Helper()
		for name, content := range files {
			for _, secret := range []string{childSecret, bindingPassword, "managedFields"} {
				if strings.Contains(content, secret) {
					t.Errorf("%s holds %q:\n%s", name, secret, content)
				}
			}
		}
	}
	noSecrets(files)

	// Logs, from a stand-in reader (no kubelet here): redacted like every other file.
	logs := func(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) ([]byte, error) {
		return []byte("2026-12-06T07:00:00Z connecting to postgresql://app:" + bindingPassword + "@orders-rw:5432/app\n" +
			"2026-12-06T07:00:01Z {\"msg\":\"login\",\"password\":\"" + bindingPassword + "\"}\n" +
			"2026-12-06T07:00:02Z connecting to amqp://guest:not-a-secret-of-the-namespace@mq:5672/\n"), nil
	}
	var buf bytes.Buffer
	if _, err := Report(ctx, c, logs, "shop", "orders", ReportOptions{OperatorNamespace: "datafleet-system", Now: time.Now()}, &buf); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "with-logs.tar.gz")
	if err := os.WriteFile(bundle, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	files = testenv.ReadTarball(t, bundle)
	if l := files["logs/orders-0/postgres.log"]; !strings.Contains(l, "connecting to REDACTED\n") || !strings.Contains(l, `"password":"REDACTED"`) ||
		!strings.Contains(l, "amqp://guest:REDACTED@mq:5672/") {
		t.Errorf("the pod's log in the bundle:\n%s", l)
	}
	noSecrets(files)
	if strings.Contains(files["logs/orders-0/postgres.log"], "not-a-secret-of-the-namespace") {
		t.Error("a URI's password in a log is not redacted")
	}
}
