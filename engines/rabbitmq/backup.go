package rabbitmq

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/bounded"
	"github.com/datafleet-dev/datafleet/framework/certs"
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
	// envPassword carries the operator administrator's password into the backup Job, and envCA
	// the instance's CA, with which it verifies the management API when TLS is required.
	envPassword = "DATAFLEET_RABBITMQ_PASSWORD"
	envCA       = "DATAFLEET_RABBITMQ_CA"
	// maxDefinitions bounds the definitions a backup takes and a restore holds: metadata, about
	// 250 bytes a queue, so a quarter of a million queues. A restore holds them about twice (the
	// lists, raw, and the import's body) plus their identities, within the Job's 256 MiB.
	maxDefinitions = 64 << 20
)

// BackupEnv implements engine.Backuper.
func (Engine) BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar {
	env := []corev1.EnvVar{workload.SecretEnv(envPassword, SecretName(inst), PasswordKey)}
	if inst.TLSRequired() {
		env = append(env, workload.SecretEnv(envCA, certs.ServerSecretName(inst.Name), certs.CAKey))
	}
	return env
}

// backupManagement is the management API behind the client Service, as the administrator; over
// TLS when the Job carries the instance's CA.
func (e Engine) backupManagement(t engine.BackupTarget) (management, error) {
	if e.management != nil {
		return e.management(nil, t.Getenv(envPassword)), nil
	}
	host := names.ServiceHost(workload.ServiceName(t.Instance), t.Instance.Namespace)
	var tlsConfig *tls.Config
	if ca := t.Getenv(envCA); ca != "" {
		var err error
		if tlsConfig, err = verifyingTLS([]byte(ca), host); err != nil {
			return management{}, err
		}
	}
	return managementAt(host, t.Getenv(envPassword), tlsConfig), nil
}

// Reach implements engine.Backuper: the management API answers the administrator.
func (e Engine) Reach(ctx context.Context, t engine.BackupTarget) error {
	m, err := e.backupManagement(t)
	if err != nil {
		return err
	}
	code, answer, err := m.do(ctx, http.MethodGet, "/api/whoami", nil)
	if err == nil && code != http.StatusOK {
		err = failed(http.MethodGet, "/api/whoami", code, answer)
	}
	return err
}

// Dump implements engine.Backuper: the definitions export, as one archive part.
func (e Engine) Dump(ctx context.Context, t engine.BackupTarget, w io.Writer) error {
	m, err := e.backupManagement(t)
	if err != nil {
		return err
	}
	// No client timeout: the export takes as long as the definitions need; ctx bounds it.
	m.unbounded = true
	resp, err := m.request(ctx, http.MethodGet, "/api/definitions", nil)
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
	// A backup no restore could hold is refused now, not found out at the restore.
	if _, err := io.Copy(pw, bounded.Reader(resp.Body, maxDefinitions)); err != nil {
		return fmt.Errorf("reading the definitions: %w", err)
	}
	return a.Close()
}

// object is what identifies an object of an export: its identifying fields, all strings in
// RabbitMQ's definitions. The rest (arguments, hashes) is never decoded for a check, so checking
// holds a fraction of the definitions' size.
type object struct {
	Name            string `json:"name"`
	Vhost           string `json:"vhost"`
	Type            string `json:"type"`
	User            string `json:"user"`
	Configure       string `json:"configure"`
	Write           string `json:"write"`
	Read            string `json:"read"`
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	DestinationType string `json:"destination_type"`
	RoutingKey      string `json:"routing_key"`
}

// objects are the lists of an export a load checks after the import.
type objects struct {
	Users       []object `json:"users"`
	Vhosts      []object `json:"vhosts"`
	Permissions []object `json:"permissions"`
	Exchanges   []object `json:"exchanges"`
	Queues      []object `json:"queues"`
	Bindings    []object `json:"bindings"`
}

// operatorUser reports users a restore leaves alone: the operator's administrator (its password
// is the target instance's own) and binding users (their passwords belong to their bindings'
// Secrets; the restored instance's bindings create their own).
func operatorUser(name string) bool {
	return name == AdminUser || strings.HasPrefix(name, names.UserPrefix)
}

// Load implements engine.Backuper: the definitions are imported once the whole archive is read,
// without the operator's users, and then every imported user, vhost, permission, exchange, queue
// and binding is looked up. An import adds and updates; it deletes nothing. The definitions are
// held once, as raw JSON per list; only the users and permissions (a restore filters them) and
// the identities to check are decoded.
func (e Engine) Load(ctx context.Context, t engine.BackupTarget, r io.Reader) (string, error) {
	all, err := readDefinitions(r)
	if err != nil {
		return "", err
	}
	var users, permissions, topicPermissions []map[string]any
	for key, list := range map[string]*[]map[string]any{"users": &users, "permissions": &permissions, "topic_permissions": &topicPermissions} {
		if err := decodeList(all, key, list); err != nil {
			return "", err
		}
	}
	keep := func(list []map[string]any, key string) []map[string]any {
		return slices.DeleteFunc(list, func(item map[string]any) bool {
			name, _ := item[key].(string)
			return operatorUser(name)
		})
	}
	users, permissions, topicPermissions = keep(users, "name"), keep(permissions, "user"), keep(topicPermissions, "user")
	lowered := restorableTags(users)
	for key, v := range map[string]any{"users": users, "permissions": permissions, "topic_permissions": topicPermissions} {
		b, _ := json.Marshal(v)
		all[key] = b
	}
	// The cluster's name is the target's own.
	delete(all, "global_parameters")
	var want objects
	for key, list := range map[string]*[]object{"users": &want.Users, "vhosts": &want.Vhosts, "permissions": &want.Permissions,
		"exchanges": &want.Exchanges, "queues": &want.Queues, "bindings": &want.Bindings} {
		if err := decodeList(all, key, list); err != nil {
			return "", err
		}
	}

	m, err := e.backupManagement(t)
	if err != nil {
		return "", err
	}
	// The import and the export that checks it take as long as the definitions need (a 5 s
	// timeout failed large ones half done); the Job's deadline bounds them.
	m.unbounded = true
	if _, err := m.send(ctx, http.MethodPost, "/api/definitions", all, false); err != nil {
		return "", fmt.Errorf("importing the definitions: %w", err)
	}
	clear(all)
	summary, err := checkImported(ctx, m, want)
	if err == nil && len(lowered) > 0 {
		summary += "; tags a binding cannot have were left out: " + strings.Join(lowered, ", ")
	}
	return summary, err
}

// readDefinitions reads the archive's definitions into their top-level lists, raw, refusing more
// than maxDefinitions.
func readDefinitions(r io.Reader) (map[string]json.RawMessage, error) {
	var all map[string]json.RawMessage
	err := archive.NewReader(r).Each(func(name string, part io.Reader) error {
		if name != partDefinitions {
			return fmt.Errorf("the archive has an unknown part %q", name)
		}
		if err := json.NewDecoder(bounded.Reader(part, maxDefinitions)).Decode(&all); err != nil {
			return fmt.Errorf("%s: %w", partDefinitions, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if all == nil {
		return nil, fmt.Errorf("the archive has no %s", partDefinitions)
	}
	return all, nil
}

// decodeList decodes the definitions' list key (absent: empty) into list.
func decodeList[T any](all map[string]json.RawMessage, key string, list *[]T) error {
	raw, ok := all[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, list); err != nil {
		return fmt.Errorf("%s: %s: %w", partDefinitions, key, err)
	}
	return nil
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

// checkImported looks up every imported object in a fresh export, decoded as it is read.
func checkImported(ctx context.Context, m management, want objects) (string, error) {
	var got objects
	if err := m.decode(ctx, "/api/definitions", &got, maxDefinitions); err != nil {
		return "", err
	}
	for _, c := range []struct {
		what      string
		want, got []object
		identity  func(object) string
	}{
		{"user", want.Users, got.Users, func(o object) string { return fmt.Sprintf("(name=%s)", o.Name) }},
		{"vhost", want.Vhosts, got.Vhosts, func(o object) string { return fmt.Sprintf("(name=%s)", o.Name) }},
		{"permission", want.Permissions, got.Permissions, func(o object) string {
			return fmt.Sprintf("(user=%s vhost=%s configure=%s write=%s read=%s)", o.User, o.Vhost, o.Configure, o.Write, o.Read)
		}},
		{"exchange", want.Exchanges, got.Exchanges, func(o object) string {
			return fmt.Sprintf("(vhost=%s name=%s type=%s)", o.Vhost, o.Name, o.Type)
		}},
		{"queue", want.Queues, got.Queues, func(o object) string { return fmt.Sprintf("(vhost=%s name=%s)", o.Vhost, o.Name) }},
		{"binding", want.Bindings, got.Bindings, func(o object) string {
			return fmt.Sprintf("(vhost=%s source=%s destination=%s destination_type=%s routing_key=%s)",
				o.Vhost, o.Source, o.Destination, o.DestinationType, o.RoutingKey)
		}},
	} {
		present := make(map[string]bool, len(c.got))
		for _, o := range c.got {
			present[c.identity(o)] = true
		}
		for _, o := range c.want {
			if id := c.identity(o); !present[id] {
				return "", fmt.Errorf("after the import, %s %s is missing", c.what, id)
			}
		}
	}
	return fmt.Sprintf("restored %d users, %d vhosts, %d permissions, %d exchanges, %d queues, %d bindings; each found after the import",
		len(want.Users), len(want.Vhosts), len(want.Permissions), len(want.Exchanges), len(want.Queues), len(want.Bindings)), nil
}
