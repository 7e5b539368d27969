package rabbitmq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.Backuper = Engine{}

// A RabbitMQ backup is its definitions (RabbitMQ's own export: users with password hashes,
// vhosts, permissions, policies, parameters, exchanges, queues, bindings), not messages:
// messages are in flight by nature, and RabbitMQ has no consistent way to export them.
const (
	partDefinitions = "definitions.json"
	// envPassword carries the operator administrator's password into the backup Job.
	envPassword = "DATAFLEET_RABBITMQ_PASSWORD"
	// maxDefinitions bounds what a load holds in memory: definitions are metadata.
	maxDefinitions = 256 << 20
)

// BackupEnv implements engine.Backuper.
func (Engine) BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar {
	return []corev1.EnvVar{workload.SecretEnv(envPassword, SecretName(inst), PasswordKey)}
}

// backupManagement is the management API behind the client Service, as the administrator.
func (e Engine) backupManagement(t engine.BackupTarget) management {
	if e.management != nil {
		return e.management(nil, t.Getenv(envPassword))
	}
	host := fmt.Sprintf("%s.%s.svc", serviceName(t.Instance), t.Instance.Namespace)
	return management{base: "http://" + net.JoinHostPort(host, strconv.Itoa(managementPort)), user: AdminUser, password: t.Getenv(envPassword)}
}

// Dump implements engine.Backuper: the definitions export, as one archive part.
func (e Engine) Dump(ctx context.Context, t engine.BackupTarget, w io.Writer) error {
	// No client timeout: the export takes as long as the definitions need; ctx bounds it.
	resp, err := e.backupManagement(t).request(ctx, http.DefaultClient, http.MethodGet, "/api/definitions", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return failed(http.MethodGet, "/api/definitions", resp.StatusCode, answer)
	}
	a := archive.NewWriter(w)
	pw, err := a.Create(partDefinitions)
	if err != nil {
		return err
	}
	if _, err := io.Copy(pw, resp.Body); err != nil {
		return fmt.Errorf("reading the definitions: %w", err)
	}
	return a.Close()
}

// definitions is the part of an export a load filters and checks; everything else in the export
// is imported as it is.
type definitions struct {
	Users            []map[string]any `json:"users"`
	Vhosts           []map[string]any `json:"vhosts"`
	Permissions      []map[string]any `json:"permissions"`
	TopicPermissions []map[string]any `json:"topic_permissions"`
	Queues           []map[string]any `json:"queues"`
	Exchanges        []map[string]any `json:"exchanges"`
	Bindings         []map[string]any `json:"bindings"`
}

// operatorUser reports users a restore leaves alone: the operator's administrator (its password
// is the target instance's own) and binding users (their passwords belong to their bindings'
// Secrets; the restored instance's bindings create their own).
func operatorUser(name string) bool {
	return name == AdminUser || strings.HasPrefix(name, names.UserPrefix)
}

// Load implements engine.Backuper: the definitions are imported once the whole archive is read,
// without the operator's users, and then every imported user, vhost, permission, exchange, queue
// and binding is looked up. An import adds and updates; it deletes nothing.
func (e Engine) Load(ctx context.Context, t engine.BackupTarget, r io.Reader) (string, error) {
	a := archive.NewReader(r)
	var raw []byte
	err := a.Each(func(name string, part io.Reader) error {
		if name != partDefinitions {
			return fmt.Errorf("the archive has an unknown part %q", name)
		}
		var err error
		raw, err = io.ReadAll(io.LimitReader(part, maxDefinitions))
		return err
	})
	if err != nil {
		return "", err
	}
	if raw == nil {
		return "", fmt.Errorf("the archive has no %s", partDefinitions)
	}
	all := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &all); err != nil {
		return "", fmt.Errorf("%s: %w", partDefinitions, err)
	}
	var defs definitions
	if err := json.Unmarshal(raw, &defs); err != nil {
		return "", fmt.Errorf("%s: %w", partDefinitions, err)
	}
	keep := func(list []map[string]any, key string) []map[string]any {
		out := list[:0:0]
		for _, item := range list {
			if name, _ := item[key].(string); !operatorUser(name) {
				out = append(out, item)
			}
		}
		return out
	}
	defs.Users, defs.Permissions, defs.TopicPermissions = keep(defs.Users, "name"), keep(defs.Permissions, "user"), keep(defs.TopicPermissions, "user")
	lowered := restorableTags(defs.Users)
	for key, v := range map[string]any{"users": defs.Users, "permissions": defs.Permissions, "topic_permissions": defs.TopicPermissions} {
		b, _ := json.Marshal(v)
		all[key] = b
	}
	// The cluster's name is the target's own.
	delete(all, "global_parameters")

	m := e.backupManagement(t)
	// The import and the export that checks it take as long as the definitions need (a 5 s
	// timeout failed large ones half done); the Job's deadline bounds them.
	m.client = http.DefaultClient
	if _, err := m.send(ctx, http.MethodPost, "/api/definitions", all, false); err != nil {
		return "", fmt.Errorf("importing the definitions: %w", err)
	}
	summary, err := checkImported(ctx, m, defs)
	if err == nil && len(lowered) > 0 {
		summary += "; tags a binding cannot have were left out: " + strings.Join(lowered, ", ")
	}
	return summary, err
}

// bindingTags are the management tags a binding's user can have (an admin binding's): a restored
// user keeps no other. An archive is data from a store: a forged user tagged administrator would
// manage the whole broker, the operator's own user included.
var bindingTags = []string{"management", "policymaker"}

// restorableTags narrows each user's tags to bindingTags, in place, and names what it took away.
func restorableTags(users []map[string]any) []string {
	var lowered []string
	for _, u := range users {
		var tags tagList
		raw, _ := json.Marshal(u["tags"])
		if err := tags.UnmarshalJSON(raw); err != nil {
			tags = nil // neither a list nor a string: no tag is kept
		}
		kept := slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return !slices.Contains(bindingTags, t) })
		name, _ := u["name"].(string)
		for _, t := range tags {
			if !slices.Contains(kept, t) {
				lowered = append(lowered, t+" of "+name)
			}
		}
		u["tags"] = strings.Join(kept, ",")
	}
	return lowered
}

// checkImported looks up every imported object in a fresh export.
func checkImported(ctx context.Context, m management, want definitions) (string, error) {
	var got definitions
	if _, err := m.get(ctx, "/api/definitions", &got); err != nil {
		return "", err
	}
	for _, c := range []struct {
		what       string
		want, got  []map[string]any
		identifies []string
	}{
		{"user", want.Users, got.Users, []string{"name"}},
		{"vhost", want.Vhosts, got.Vhosts, []string{"name"}},
		{"permission", want.Permissions, got.Permissions, []string{"user", "vhost", "configure", "write", "read"}},
		{"exchange", want.Exchanges, got.Exchanges, []string{"vhost", "name", "type"}},
		{"queue", want.Queues, got.Queues, []string{"vhost", "name"}},
		{"binding", want.Bindings, got.Bindings, []string{"vhost", "source", "destination", "destination_type", "routing_key"}},
	} {
		present := map[string]bool{}
		for _, item := range c.got {
			present[identity(item, c.identifies)] = true
		}
		for _, item := range c.want {
			if id := identity(item, c.identifies); !present[id] {
				return "", fmt.Errorf("after the import, %s %s is missing", c.what, id)
			}
		}
	}
	return fmt.Sprintf("restored %d users, %d vhosts, %d permissions, %d exchanges, %d queues, %d bindings; each found after the import",
		len(want.Users), len(want.Vhosts), len(want.Permissions), len(want.Exchanges), len(want.Queues), len(want.Bindings)), nil
}

func identity(item map[string]any, keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, item[k])
	}
	return "(" + strings.Join(parts, " ") + ")"
}
