package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// backupTarget reaches a local node's management API the way a backup Job reaches an instance's.
func backupTarget(n *localNode) (Engine, engine.BackupTarget) {
	e := Engine{management: func(*corev1.Pod, string) management { return n.management() }}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "events"}}
	return e, engine.BackupTarget{Instance: inst, Getenv: func(string) string { return testPassword }}
}

func mustSend(t *testing.T, m management, method, path string, body any) {
	t.Helper()
	if _, err := m.send(context.Background(), method, path, body, false); err != nil {
		t.Fatal(err)
	}
}

func login(n *localNode, user, password, vhost string) error {
	u := fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", url.PathEscape(user), url.PathEscape(password), n.amqp, url.PathEscape(vhost))
	conn, err := amqp.Dial(u)
	if err == nil {
		conn.Close()
	}
	return err
}

// Users, vhosts, permissions, exchanges, queues and bindings come back after a restore, in place
// and into another node, through a file:// store; binding users and the operator's administrator
// are left as they are on the target.
func TestDefinitionsBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	// One node after the other: two starting at once on a small machine can exceed the wait.
	src := newLocalCluster(t, 1).start(0, "")
	waitReady(t, src)
	dst := newLocalCluster(t, 1).start(0, "")
	waitReady(t, dst)
	m := src.management()
	binder := names.UserStem("apps", "orders") + "_0"
	weird := "team/a b%"
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPut, "/api/vhosts/orders", map[string]any{}},
		{http.MethodPut, "/api/vhosts/" + url.PathEscape(weird), map[string]any{}},
		{http.MethodPut, "/api/users/app-user", map[string]any{"password": "app-secret", "tags": ""}},
		{http.MethodPut, "/api/users/" + binder, map[string]any{"password": "binding-secret-1", "tags": ""}},
		{http.MethodPut, "/api/permissions/orders/app-user", map[string]any{"configure": "^app\\.", "write": ".*", "read": ".*"}},
		{http.MethodPut, "/api/permissions/" + url.PathEscape(weird) + "/app-user", map[string]any{"configure": "", "write": "", "read": ".*"}},
		{http.MethodPut, "/api/permissions/orders/" + binder, map[string]any{"configure": ".*", "write": ".*", "read": ".*"}},
		{http.MethodPut, "/api/exchanges/orders/app.events", map[string]any{"type": "topic", "durable": true}},
		{http.MethodPut, "/api/queues/orders/app.created", map[string]any{"durable": true, "arguments": map[string]any{"x-queue-type": "quorum"}}},
		{http.MethodPost, "/api/bindings/orders/e/app.events/q/app.created", map[string]any{"routing_key": "order.created"}},
	} {
		mustSend(t, m, r.method, r.path, r.body)
	}

	s, err := store.Open(ctx, "file://"+t.TempDir(), "rmq", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, target := backupTarget(src)
	// What the Job waits for before it dumps (job.reach).
	if err := e.Reach(ctx, target); err != nil {
		t.Fatalf("a running node is not reached: %v", err)
	}
	man, err := backup.Write(ctx, s, "apps/events/b1", backup.Manifest{Engine: Name}, nil,
		func(ctx context.Context, w io.Writer) error { return e.Dump(ctx, target, w) })
	if err != nil {
		t.Fatal(err)
	}
	restore := func(n *localNode) string {
		t.Helper()
		if err := backup.Verify(ctx, s, "apps/events/b1", man, nil); err != nil {
			t.Fatal(err)
		}
		rc, err := backup.Open(ctx, s, "apps/events/b1", man, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		e, target := backupTarget(n)
		summary, err := e.Load(ctx, target, rc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load: %s", summary)
		return summary
	}
	restored := func(t *testing.T, n *localNode) {
		t.Helper()
		if err := login(n, "app-user", "app-secret", "orders"); err != nil {
			t.Fatalf("app-user cannot log in to orders: %v", err)
		}
		if err := login(n, "app-user", "app-secret", weird); err != nil {
			t.Fatalf("app-user cannot log in to %q: %v", weird, err)
		}
		var q struct {
			Type string `json:"type"`
		}
		if _, err := n.management().get(ctx, "/api/queues/orders/app.created", &q); err != nil || q.Type != "quorum" {
			t.Fatalf("queue app.created: %+v %v", q, err)
		}
		var bindings []map[string]any
		if _, err := n.management().get(ctx, "/api/bindings/orders/e/app.events/q/app.created", &bindings); err != nil || len(bindings) != 1 || bindings[0]["routing_key"] != "order.created" {
			t.Fatalf("binding: %v %v", bindings, err)
		}
		var perm map[string]any
		if _, err := n.management().get(ctx, "/api/permissions/orders/app-user", &perm); err != nil || perm["configure"] != "^app\\." {
			t.Fatalf("permission: %v %v", perm, err)
		}
	}

	t.Run("in place", func(t *testing.T) {
		mustSend(t, m, http.MethodDelete, "/api/vhosts/orders", nil)
		mustSend(t, m, http.MethodDelete, "/api/users/app-user", nil)
		// The binding rotated its password after the backup: the restore must not undo that.
		mustSend(t, m, http.MethodPut, "/api/users/"+binder, map[string]any{"password": "binding-secret-2", "tags": ""})
		if !strings.Contains(restore(src), "each found after the import") {
			t.Fatal("the summary does not say the import was checked")
		}
		restored(t, src)
		// Its permissions on the re-created vhost come from its binding, which ensures them again
		// (the restore nudges bindings); what matters here is which password authenticates.
		if err := login(src, binder, "binding-secret-2", "orders"); err != nil && !strings.Contains(err.Error(), "no access to this vhost") {
			t.Fatalf("the binding's current password no longer works: %v", err)
		}
		if err := login(src, binder, "binding-secret-1", "orders"); err == nil || !strings.Contains(err.Error(), "username or password not allowed") {
			t.Fatalf("the binding's old password works again: %v", err)
		}
	})

	t.Run("into another node", func(t *testing.T) {
		restore(dst)
		restored(t, dst)
		var users []struct{ Name string }
		if _, err := dst.management().get(ctx, "/api/users", &users); err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if strings.HasPrefix(u.Name, names.UserPrefix) {
				t.Fatalf("binding user %s was copied to the new node", u.Name)
			}
		}
		if err := login(dst, AdminUser, testPassword, "/"); err != nil {
			t.Fatalf("the administrator cannot log in after the restore: %v", err)
		}
	})

	t.Run("a forged administrator is restored without its tag", func(t *testing.T) {
		rc, err := backup.Open(ctx, s, "apps/events/b1", man, nil)
		if err != nil {
			t.Fatal(err)
		}
		full, _ := io.ReadAll(rc)
		rc.Close()
		// What whoever can write to the store could put there: a user of its own, tagged
		// administrator, with a password it knows.
		hash, _ := passwordHash("chosen")
		forged := rewriteDefinitions(t, full, func(defs map[string]any) {
			defs["users"] = append(defs["users"].([]any), map[string]any{"name": "intruder", "password_hash": hash,
				"hashing_algorithm": hashAlgorithm, "tags": []string{"administrator", "management"}})
		})
		e, target := backupTarget(dst)
		summary, err := e.Load(ctx, target, bytes.NewReader(forged))
		if err != nil {
			t.Fatal(err)
		}
		var users []struct{ Name string }
		intruder := management{base: dst.management().base, user: "intruder", password: "chosen"}
		code, err := intruder.get(ctx, "/api/users", &users)
		if code != http.StatusForbidden && code != http.StatusUnauthorized {
			t.Fatalf("the restored user lists the broker's users: %d %v %v", code, users, err)
		}
		if !strings.Contains(summary, "tags a binding cannot have were left out: administrator of intruder") {
			t.Errorf("the summary does not say what was left out: %s", summary)
		}
		if err := login(dst, AdminUser, testPassword, "/"); err != nil {
			t.Fatalf("the administrator cannot log in after the restore: %v", err)
		}
	})

	t.Run("a cut archive imports nothing", func(t *testing.T) {
		mustSend(t, dst.management(), http.MethodDelete, "/api/users/app-user", nil)
		rc, err := backup.Open(ctx, s, "apps/events/b1", man, nil)
		if err != nil {
			t.Fatal(err)
		}
		full, _ := io.ReadAll(rc)
		rc.Close()
		e, target := backupTarget(dst)
		if _, err := e.Load(ctx, target, strings.NewReader(string(full[:len(full)-1]))); err == nil {
			t.Fatal("a cut archive was loaded")
		}
		if err := login(dst, "app-user", "app-secret", "orders"); err == nil {
			t.Fatal("a cut archive's users were imported")
		}
	})
}

// rewriteDefinitions copies a definitions archive with its definitions changed by change.
func rewriteDefinitions(t *testing.T, in []byte, change func(map[string]any)) []byte {
	t.Helper()
	var out bytes.Buffer
	w := archive.NewWriter(&out)
	err := archive.NewReader(bytes.NewReader(in)).Each(func(name string, part io.Reader) error {
		var defs map[string]any
		if err := json.NewDecoder(part).Decode(&defs); err != nil {
			return err
		}
		change(defs)
		pw, err := w.Create(name)
		if err != nil {
			return err
		}
		return json.NewEncoder(pw).Encode(defs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
