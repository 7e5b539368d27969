package rabbitmq

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.UserManager = Engine{}

// DefaultVhost is the vhost of a binding that names none.
const DefaultVhost = engine.DefaultVhost

// BindingType implements engine.UserManager.
func (Engine) BindingType() string { return "rabbitmq" }

// Roles implements engine.UserManager.
func (Engine) Roles() []v1alpha1.BindingRole { return v1alpha1.BindingRoles() }

// Target implements engine.UserManager: users get permissions on a vhost.
func (Engine) Target() string { return "vhost" }

// CheckTarget implements engine.UserManager: a vhost is "/" or "/"-separated segments, none empty,
// "." or "..", which a proxy in front of the management API could resolve to another vhost's
// path. The CRD's CEL rule refuses the same at admission.
func (Engine) CheckTarget(b *v1alpha1.ServiceBinding) error {
	vhost := bindingVhost(b)
	if vhost == DefaultVhost {
		return nil
	}
	for _, seg := range strings.Split(vhost, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("spec.vhost: %q is not a vhost name: its /-separated segments may not be empty, \".\" or \"..\"", vhost)
		}
	}
	return nil
}

func bindingVhost(b *v1alpha1.ServiceBinding) string { return engine.BindingTarget(b, Engine{}) }

// Connection implements engine.UserManager: the client Service, AMQPS when TLS is on. The vhost
// is the URI's path, escaped ("/" is "%2F"), as the AMQP URI specification asks.
func (Engine) Connection(in engine.UsersInput, user, password string) engine.Connection {
	inst := in.Instance
	scheme, port := "amqp", int32(amqpPort)
	if inst.TLSEnabled() {
		scheme, port = "amqps", amqpsPort
	}
	return engine.NewConnection(scheme, workload.ServiceName(inst), inst.Namespace, port, user, password, "vhost", bindingVhost(in.Binding), "")
}

// permissions are a user's configure, write and read patterns on a vhost.
type permissions struct {
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// grants are what a role gives: the management tags and the permissions on the binding's vhost.
// readOnly may consume from every queue and declare the server-named queues (amq.gen-...) a
// subscriber binds to an exchange; it cannot publish (write on an exchange) or declare others.
func grants(role v1alpha1.BindingRole) (tags tagList, p permissions) {
	switch role {
	case v1alpha1.RoleAdmin:
		return tagList{"management", "policymaker"}, permissions{".*", ".*", ".*"}
	case v1alpha1.RoleReadOnly:
		return tagList{}, permissions{`^amq\.gen-.*`, `^amq\.gen-.*`, ".*"}
	}
	return tagList{}, permissions{".*", ".*", ".*"}
}

// EnsureUser implements engine.UserManager: the vhost (created with quorum queues by default if
// absent), the user, its permissions; each written only when it differs. The password reaches
// RabbitMQ as a salted SHA-256 hash, never in clear.
func (e Engine) EnsureUser(ctx context.Context, in engine.UsersInput, user, password string) error {
	if err := cmp.Or(engine.CheckUser(in, user), e.CheckTarget(in.Binding)); err != nil {
		return err
	}
	m, err := e.usersManagement(ctx, in)
	if err != nil {
		return err
	}
	vhost := bindingVhost(in.Binding)
	vpath := "/api/vhosts/" + url.PathEscape(vhost)
	if code, err := m.get(ctx, vpath, &struct{}{}); code == http.StatusNotFound {
		// 3.13 and later read default_queue_type, 3.10 to 3.12 defaultqueuetype; each ignores the other.
		body := map[string]string{"default_queue_type": "quorum", "defaultqueuetype": "quorum"}
		if _, err := m.send(ctx, http.MethodPut, vpath, body, false); err != nil {
			return fmt.Errorf("creating vhost: %w", err)
		}
	} else if err != nil {
		return err
	}

	tags, perms := grants(in.Binding.Spec.Role)
	upath := "/api/users/" + url.PathEscape(user)
	var live struct {
		Hash      string  `json:"password_hash"`
		Algorithm string  `json:"hashing_algorithm"`
		Tags      tagList `json:"tags"`
	}
	code, err := m.get(ctx, upath, &live)
	if err != nil && code != http.StatusNotFound {
		return err
	}
	if code == http.StatusNotFound || !hashMatches(live.Algorithm, live.Hash, password) || !slices.Equal(live.Tags, tags) {
		hash, err := passwordHash(password)
		if err != nil {
			return err
		}
		body := map[string]string{"password_hash": hash, "hashing_algorithm": hashAlgorithm, "tags": strings.Join(tags, ",")}
		if _, err := m.send(ctx, http.MethodPut, upath, body, false); err != nil {
			return fmt.Errorf("writing the user: %w", err)
		}
	}

	ppath := "/api/permissions/" + url.PathEscape(vhost) + "/" + url.PathEscape(user)
	var have permissions
	code, err = m.get(ctx, ppath, &have)
	if err != nil && code != http.StatusNotFound {
		return err
	}
	if code == http.StatusNotFound || have != perms {
		if _, err := m.send(ctx, http.MethodPut, ppath, perms, false); err != nil {
			return fmt.Errorf("granting permissions: %w", err)
		}
	}
	return nil
}

// DropUsers implements engine.UserManager. Deleting a user removes its permissions and closes
// its connections; vhosts stay, with their queues and messages.
func (e Engine) DropUsers(ctx context.Context, in engine.UsersInput, keep []string) error {
	m, err := e.usersManagement(ctx, in)
	if err != nil {
		return err
	}
	var users []struct {
		Name string `json:"name"`
	}
	if _, err := m.get(ctx, "/api/users?columns=name", &users); err != nil {
		return err
	}
	for _, u := range users {
		if !names.IsUserOf(in.Stem, u.Name) || slices.Contains(keep, u.Name) {
			continue
		}
		if _, err := m.send(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(u.Name), nil, true); err != nil {
			return fmt.Errorf("dropping user %s: %w", u.Name, err)
		}
	}
	return nil
}

// usersManagement reaches the management API of a ready node as the operator's administrator.
func (e Engine) usersManagement(ctx context.Context, in engine.UsersInput) (management, error) {
	inst := in.Instance
	password, err := adminPassword(ctx, in.Client, inst)
	if err != nil {
		return management{}, err
	}
	p, err := workload.ReadyPod(ctx, in.Client, inst.Namespace, names.InstanceLabels(Name, inst.Name))
	if err != nil || p == nil {
		return management{}, cmp.Or(err, errors.New("no node is ready"))
	}
	if e.management != nil {
		return e.management(p, password), nil
	}
	mgmtTLS, err := managementTLS(ctx, in.Client, inst)
	if err != nil {
		return management{}, err
	}
	return managementAt(p.Status.PodIP, password, mgmtTLS), nil
}

// tagList reads a user's tags, which the management API gives as a list (a comma-separated string
// before 3.9), sorted.
type tagList []string

func (t *tagList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		list = strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
	}
	sort.Strings(list)
	*t = append(tagList{}, list...)
	return nil
}

// RabbitMQ's default password hashing: base64(salt + sha256(salt + password)), 4-byte salt.
const hashAlgorithm = "rabbit_password_hashing_sha256"

func passwordHash(password string) (string, error) {
	salt := make([]byte, 4)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(slices.Clone(salt), password...))
	return base64.StdEncoding.EncodeToString(append(salt, sum[:]...)), nil
}

// hashMatches says whether a stored hash is of this password.
func hashMatches(algorithm, stored, password string) bool {
	raw, err := base64.StdEncoding.DecodeString(stored)
	if algorithm != hashAlgorithm || err != nil || len(raw) != 4+sha256.Size {
		return false
	}
	sum := sha256.Sum256(append(slices.Clone(raw[:4]), password...))
	return bytes.Equal(raw[4:], sum[:])
}
