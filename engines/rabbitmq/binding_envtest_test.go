package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// servingEngine is the RabbitMQ engine with its supervisor replaced: the local node's name is not
// the one a pod would give it, so the cluster check could never pass. The instance is reported
// serving once its StatefulSet is ready; users and Secrets are the engine's and framework's own.
type servingEngine struct{ Engine }

func (servingEngine) Supervise(ctx context.Context, s *engine.Supervision) error {
	return enginetest.SuperviseServing(ctx, s, Name, SecretName(s.Instance), CookieKey, PasswordKey)
}

// bindingHarness is one local node, a real API server, and the operator's controllers on it,
// which a test may stop and start again.
type bindingHarness struct {
	t    *testing.T
	node *localNode
	env  *testenv.Env
	e    servingEngine
	mgr  *testenv.Manager
	inst *v1alpha1.ServiceInstance
}

func newBindingHarness(t *testing.T) *bindingHarness {
	node := newLocalCluster(t, 1).start(0, "")
	waitReady(t, node)
	h := &bindingHarness{t: t, node: node, env: testenv.Start(t),
		e: servingEngine{Engine{management: func(*corev1.Pod, string) management { return node.management() }}}}
	h.startOperator()
	t.Cleanup(func() { h.mgr.Stop() })
	ctx, c := context.Background(), h.env.Client
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: Name,
			Versions: []v1alpha1.CatalogVersion{{Version: release.Version, Image: release.Image, Default: true}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	h.inst = h.serve(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version}})
	return h
}

// serve creates the instance, reports its StatefulSet ready and gives it a ready pod that stands
// for the local node (the engine asks a ready pod's node), and waits for it to be Ready.
func (h *bindingHarness) serve(inst *v1alpha1.ServiceInstance) *v1alpha1.ServiceInstance {
	t, c, ctx := h.t, h.env.Client, context.Background()
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	managertest.MarkReady(t, c, client.ObjectKeyFromObject(inst))
	managertest.RunningPod(t, c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: workload.PodName(inst, 0), Namespace: inst.Namespace, Labels: names.InstanceLabels(Name, inst.Name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: Name, Image: "rabbitmq"}}}})
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		if inst.Status.Phase != v1alpha1.PhaseReady {
			return testenv.Errorf("instance %+v", inst.Status)
		}
		return nil
	})
	return inst
}

func (h *bindingHarness) startOperator() {
	mgr, err := h.env.ManagerWith([]engine.Engine{h.e}, operator.Options{MaxConcurrentReconciles: 4, AgentImage: managertest.AgentImage})
	if err != nil {
		h.t.Fatal(err)
	}
	h.mgr = mgr
}

func (h *bindingHarness) create(ns, name string, role v1alpha1.BindingRole, vhost string) *v1alpha1.ServiceBinding {
	h.t.Helper()
	b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "events", Namespace: "apps"}, Role: role, Vhost: vhost}}
	if err := h.env.Client.Create(context.Background(), b); err != nil {
		h.t.Fatal(err)
	}
	return b
}

// bound waits for the binding to be Ready at its generation and returns its Secret.
func (h *bindingHarness) bound(b *v1alpha1.ServiceBinding, also func(*v1alpha1.ServiceBinding) error) *corev1.Secret {
	h.t.Helper()
	return managertest.WaitBound(h.t, h.env.Client, b, also)
}

// condition waits for the binding's Ready condition to have the reason.
func (h *bindingHarness) condition(b *v1alpha1.ServiceBinding, reason, message string) {
	h.t.Helper()
	managertest.WaitRefused(h.t, h.env.Client, b, reason, message)
}

// dial connects to the local node as the Secret says (its host is the Service's name, which only
// resolves in a cluster: the address is the local node's).
func (h *bindingHarness) dial(s *corev1.Secret) (*amqp.Connection, error) {
	u, err := url.Parse(string(s.Data["uri"]))
	if err != nil {
		return nil, err
	}
	if u.User.Username() != string(s.Data["username"]) {
		return nil, fmt.Errorf("the uri's user %q is not the username %q", u.User.Username(), s.Data["username"])
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(h.node.amqp)
	return amqp.DialConfig(u.String(), amqp.Config{Vhost: string(s.Data["vhost"])})
}

func (h *bindingHarness) channel(s *corev1.Secret) *amqp.Channel {
	h.t.Helper()
	conn, err := h.dial(s)
	if err != nil {
		h.t.Fatalf("connecting as %s: %v", s.Data["username"], err)
	}
	h.t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		h.t.Fatal(err)
	}
	return ch
}

// refused says whether a login with the Secret's credentials is refused.
func (h *bindingHarness) refused(s *corev1.Secret) error {
	conn, err := h.dial(s)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s can still log in", s.Data["username"])
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused || strings.Contains(err.Error(), "username or password not allowed") {
		return nil
	}
	return fmt.Errorf("login failed, but not as refused: %w", err)
}

// users are the node's users that bindings own.
func (h *bindingHarness) users() []string {
	var out []string
	for _, u := range h.list("/api/users?columns=name") {
		if strings.HasPrefix(u, names.UserPrefix) {
			out = append(out, u)
		}
	}
	return out
}

func (h *bindingHarness) vhosts() []string { return h.list("/api/vhosts?columns=name") }

// list reads the names of a management API listing, sorted.
func (h *bindingHarness) list(path string) []string {
	h.t.Helper()
	var list []struct {
		Name string `json:"name"`
	}
	if _, err := h.node.management().get(context.Background(), path, &list); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, v := range list {
		out = append(out, v.Name)
	}
	return sorted(out)
}

// Bindings against a real RabbitMQ node, driven by the operator's controllers on a real API
// server: the Secret's format, what each role may do, names that look like paths, rotation with
// overlap, namespace policy, deletion, a settled binding making no writes, restarts of the
// operator at random moments, and the instance's deletion taking its bindings with it.
func TestBindings(t *testing.T) {
	h := newBindingHarness(t)
	ctx, c := context.Background(), h.env.Client

	rw := h.create("apps", "orders-app", v1alpha1.RoleReadWrite, "orders")
	ro := h.create("apps", "orders-report", v1alpha1.RoleReadOnly, "orders")
	rwSecret, roSecret := h.bound(rw, nil), h.bound(ro, nil)

	t.Run("the Secret follows servicebinding.io", func(t *testing.T) {
		want := map[string]string{"type": "rabbitmq", "provider": "datafleet", "host": "events.apps.svc", "port": "5672", "vhost": "orders",
			"username": names.UserName(names.UserStem("apps", "orders-app"), 0)}
		for k, v := range want {
			if got := string(rwSecret.Data[k]); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if rwSecret.Type != "servicebinding.io/rabbitmq" || len(rwSecret.Data["password"]) != 32 || rw.Status.Binding.Name != "orders-app" {
			t.Errorf("type %s, password of %d characters, status.binding %+v", rwSecret.Type, len(rwSecret.Data["password"]), rw.Status.Binding)
		}
		if got, want := string(rwSecret.Data["uri"]), "amqp://"+string(rwSecret.Data["username"])+":"+string(rwSecret.Data["password"])+"@events.apps.svc:5672/orders"; got != want {
			t.Errorf("uri %q, want %q", got, want)
		}
		if !metav1.IsControlledBy(rwSecret, rw) {
			t.Errorf("the Secret is not controlled by its binding: %+v", rwSecret.OwnerReferences)
		}
		if _, ok := rwSecret.Data["ca.crt"]; ok {
			t.Error("ca.crt without TLS")
		}
	})

	t.Run("with TLS the Secret has the CA and an amqps uri", func(t *testing.T) {
		h.serve(&v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: "apps"},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, TLS: &v1alpha1.TLSSpec{Enabled: true}}})
		b := &v1alpha1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Name: "secure-app", Namespace: "apps"},
			Spec: v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: "secure"}, Role: v1alpha1.RoleReadWrite}}
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		s := h.bound(b, nil)
		var ca corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: certs.CAName("secure")}, &ca); err != nil {
			t.Fatal(err)
		}
		if got := string(s.Data["ca.crt"]); got == "" || got != ca.Data[certs.CAKey] {
			t.Errorf("ca.crt is not the instance's CA: %q", got)
		}
		if string(s.Data["port"]) != "5671" || !strings.HasPrefix(string(s.Data["uri"]), "amqps://") || !strings.HasSuffix(string(s.Data["uri"]), "@secure.apps.svc:5671/%2F") {
			t.Errorf("port %s, uri %s", s.Data["port"], s.Data["uri"])
		}
		// A CA rotation asked for: the binding's Secret hands out both CAs, as published.
		inst := &v1alpha1.ServiceInstance{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "secure"}, inst); err != nil {
			t.Fatal(err)
		}
		patched := inst.DeepCopy()
		patched.Annotations = map[string]string{certs.AnnotationRotateCA: "1"}
		if err := c.Patch(ctx, patched, client.MergeFrom(inst)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: certs.CAName("secure")}, &ca); err != nil {
				return err
			}
			if n := strings.Count(string(s.Data["ca.crt"]), "BEGIN CERTIFICATE"); n != 2 || string(s.Data["ca.crt"]) != ca.Data[certs.CAKey] {
				return testenv.Errorf("the binding's ca.crt holds %d CAs (want both, as published)", n)
			}
			return nil
		})
		if err := c.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		managertest.WaitGone(t, c, b)
	})

	t.Run("readWrite publishes and consumes, readOnly consumes and is refused publishing", func(t *testing.T) {
		ch := h.channel(rwSecret)
		if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := ch.PublishWithContext(ctx, "", "jobs", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
		var q struct {
			Type string `json:"type"`
		}
		// The vhost the binding created defaults to quorum queues.
		if _, err := h.node.management().get(ctx, "/api/queues/orders/jobs", &q); err != nil || q.Type != "quorum" {
			t.Errorf("queue type %q: %v", q.Type, err)
		}
		rch := h.channel(roSecret)
		got := 0
		testenv.Eventually(t, 30*time.Second, func() error {
			for {
				_, ok, err := rch.Get("jobs", true)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				got++
			}
			if got != 3 {
				return fmt.Errorf("read %d of 3", got)
			}
			return nil
		})
		closed := rch.NotifyClose(make(chan *amqp.Error, 1))
		_ = rch.PublishWithContext(ctx, "", "jobs", false, false, amqp.Publishing{Body: []byte("not allowed")})
		select {
		case err := <-closed:
			if err == nil || err.Code != amqp.AccessRefused {
				t.Fatalf("publishing as readOnly closed the channel with %v, want ACCESS_REFUSED", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("publishing as readOnly was not refused")
		}
		if _, err := h.channel(roSecret).QueueDeclare("mine", true, false, false, false, nil); err == nil {
			t.Fatal("readOnly declared a queue")
		}
	})

	t.Run("a vhost that looks like a path is that vhost and nothing else", func(t *testing.T) {
		before := h.vhosts()
		// "." and ".." segments are refused at admission (CEL) and by CheckTarget.
		hostile := `api/users/guest%2F"; DROP`
		b := h.create("apps", "hostile", v1alpha1.RoleReadWrite, hostile)
		s := h.bound(b, nil)
		if string(s.Data["vhost"]) != hostile {
			t.Fatalf("vhost key %q", s.Data["vhost"])
		}
		ch := h.channel(s)
		if _, err := ch.QueueDeclare("q", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := h.vhosts(), append(before, hostile); !slices.Equal(got, sorted(want)) {
			t.Fatalf("vhosts %q, want %q", got, sorted(want))
		}
		if err := c.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		managertest.WaitGone(t, c, b)
	})

	t.Run("a Secret edited to name the administrator or another binding's user reaches neither", func(t *testing.T) {
		b := h.create("apps", "hijacker", v1alpha1.RoleReadWrite, "orders")
		own := h.bound(b, nil)
		for _, target := range []string{AdminUser, string(roSecret.Data["username"])} {
			s := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(own), s); err != nil {
				t.Fatal(err)
			}
			s.Data["username"], s.Data["password"] = []byte(target), []byte("chosen-by-the-tenant")
			s.Annotations["datafleet.dev/previous-username"] = target
			s.Annotations["datafleet.dev/previous-expires"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			if err := c.Update(ctx, s); err != nil {
				t.Fatal(err)
			}
			want := names.UserName(names.UserStem("apps", "hijacker"), 0)
			testenv.Eventually(t, time.Minute, func() error {
				if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
					return err
				}
				if got := string(s.Data["username"]); got != want || s.Annotations["datafleet.dev/previous-username"] != "" {
					return testenv.Errorf("the Secret names %q (previous %q), want %q", got, s.Annotations["datafleet.dev/previous-username"], want)
				}
				return nil
			})
			h.mgr.WaitQuiet(t, time.Minute)
			// The administrator keeps its password and its tag: the operator still manages the node.
			var admin struct {
				Tags tagList `json:"tags"`
			}
			if _, err := h.node.management().get(ctx, "/api/users/"+AdminUser, &admin); err != nil || !slices.Contains(admin.Tags, "administrator") {
				t.Fatalf("after editing the Secret to %s, the administrator: %v, tags %v", target, err, admin.Tags)
			}
			// The other binding's user still logs in with its own Secret, and the edited binding's
			// own user with the password its namespace chose.
			for _, sec := range []*corev1.Secret{roSecret, s} {
				conn, err := h.dial(sec)
				if err != nil {
					t.Fatalf("after editing the Secret to %s, %s cannot log in: %v", target, sec.Data["username"], err)
				}
				conn.Close()
			}
		}
		if err := c.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		managertest.WaitGone(t, c, b)
	})

	t.Run("rotation keeps the previous credentials for the overlap, then only the new ones work", func(t *testing.T) {
		old := rwSecret.DeepCopy()
		before := &v1alpha1.ServiceBinding{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(rw), before); err != nil || before.Status.CredentialsIssued == nil {
			t.Fatalf("a ready binding says nothing of when its credentials were issued: %v %+v", err, before.Status)
		}
		rotateAt := time.Now().Truncate(time.Second)
		managertest.UpdateBinding(t, c, rw, func(s *v1alpha1.ServiceBindingSpec) {
			s.Rotation = &v1alpha1.CredentialRotation{Generation: 1, Overlap: &metav1.Duration{Duration: 20 * time.Second}}
		})
		fresh := h.bound(rw, func(b *v1alpha1.ServiceBinding) error {
			if b.Status.CredentialGeneration != 1 || b.Status.PreviousCredentialsExpire == nil {
				return testenv.Errorf("status %+v", b.Status)
			}
			// The password's age starts again with the rotation.
			if issued := b.Status.CredentialsIssued; issued == nil || issued.Before(&metav1.Time{Time: rotateAt}) {
				return testenv.Errorf("credentials issued %v, before the rotation at %s (first issued %s)", issued, rotateAt, before.Status.CredentialsIssued)
			}
			return nil
		})
		if string(fresh.Data["username"]) == string(old.Data["username"]) || string(fresh.Data["password"]) == string(old.Data["password"]) {
			t.Fatal("the rotation did not publish new credentials")
		}
		for _, s := range []*corev1.Secret{old, fresh} {
			conn, err := h.dial(s)
			if err != nil {
				t.Fatalf("during the overlap %s cannot log in: %v", s.Data["username"], err)
			}
			conn.Close()
		}
		h.bound(rw, func(b *v1alpha1.ServiceBinding) error {
			if b.Status.PreviousCredentialsExpire != nil {
				return testenv.Errorf("previous credentials still valid until %s", b.Status.PreviousCredentialsExpire)
			}
			return nil
		})
		if err := h.refused(old); err != nil {
			t.Fatal(err)
		}
		conn, err := h.dial(fresh)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		rwSecret = fresh
	})

	t.Run("deleting a binding drops its user and its Secret", func(t *testing.T) {
		if err := c.Delete(ctx, ro); err != nil {
			t.Fatal(err)
		}
		managertest.WaitGone(t, c, ro)
		managertest.WaitGone(t, c, roSecret)
		if err := h.refused(roSecret); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("another namespace binds only what the instance's policy grants, and loses what it no longer grants", func(t *testing.T) {
		b := h.create("other", "reader", v1alpha1.RoleReadOnly, "orders")
		h.condition(b, binding.ReasonNamespaceNotAllowed, `does not allow bindings from namespace "other"`)
		policy := func(p *v1alpha1.BindingPolicy) {
			managertest.UpdateSpec(t, c, h.inst, func(s *v1alpha1.ServiceInstanceSpec) { s.BindingPolicy = p })
		}
		// Allowed, the namespace still does not reach the instance's own vhosts unless shared.
		policy(&v1alpha1.BindingPolicy{AllowedNamespaces: []string{"other"}})
		h.condition(b, binding.ReasonTargetNotShared, `vhost "orders" of ServiceInstance apps/events is not shared`)
		policy(&v1alpha1.BindingPolicy{AllowedNamespaces: []string{"other"}, SharedTargets: []string{"orders"}})
		s := h.bound(b, nil)
		h.channel(s)
		// Admin: never on a shared vhost; on one named after the namespace, when its maxRole says so.
		onShared := h.create("other", "admin-shared", v1alpha1.RoleAdmin, "orders")
		h.condition(onShared, binding.ReasonRoleNotAllowed, `bindings from namespace "other" may have readWrite at most`)
		onOwn := h.create("other", "admin-own", v1alpha1.RoleAdmin, "other_jobs")
		h.condition(onOwn, binding.ReasonRoleNotAllowed, `bindings from namespace "other" may have readWrite at most`)
		policy(&v1alpha1.BindingPolicy{SharedTargets: []string{"orders"},
			Namespaces: []v1alpha1.NamespaceBindingPolicy{{Namespace: "other", MaxRole: v1alpha1.RoleAdmin}}})
		own := h.bound(onOwn, nil)
		h.channel(own)
		if !slices.Contains(h.vhosts(), "other_jobs") {
			t.Fatalf("vhosts %v: other_jobs was not created", h.vhosts())
		}
		h.condition(onShared, binding.ReasonRoleNotAllowed, `vhost "orders" is shared`)

		// Lowered, the policy takes away what it no longer grants: users and Secrets.
		policy(&v1alpha1.BindingPolicy{AllowedNamespaces: []string{"*"}, MaxRole: v1alpha1.RoleReadOnly})
		h.condition(onOwn, binding.ReasonRoleNotAllowed, `may have readOnly at most`)
		h.condition(b, binding.ReasonTargetNotShared, "")
		for _, secret := range []*corev1.Secret{s, own} {
			managertest.WaitGone(t, c, secret)
			testenv.Eventually(t, time.Minute, func() error { return h.refused(secret) })
		}
		policy(nil)
		h.condition(b, binding.ReasonNamespaceNotAllowed, "")
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil || b.Status.Binding != nil {
				return testenv.Errorf("status.binding %+v after the revocation (%v)", b.Status.Binding, err)
			}
			return nil
		})
		for _, x := range []*v1alpha1.ServiceBinding{b, onShared, onOwn} {
			if err := c.Delete(ctx, x); err != nil {
				t.Fatal(err)
			}
			managertest.WaitGone(t, c, x)
		}
	})

	t.Run("a bound binding reconciled again writes nothing", func(t *testing.T) {
		h.mgr.WaitQuiet(t, time.Minute)
		before := h.mgr.Writes.Count()
		r := &binding.Reconciler{Client: h.mgr.Manager.GetClient(), Scheme: h.mgr.Manager.GetScheme(),
			Engines: map[string]engine.Engine{Name: h.e}}
		for range 3 {
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rw)}); err != nil {
				t.Fatal(err)
			}
		}
		h.mgr.WaitQuiet(t, time.Minute)
		if n := h.mgr.Writes.Count() - before; n != 0 {
			t.Fatalf("%d API writes", n)
		}
	})

	t.Run("after restarts at random moments during create and delete of 20 bindings, users and bindings match", func(t *testing.T) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		var made []*v1alpha1.ServiceBinding
		for i := range 20 {
			made = append(made, h.create("apps", fmt.Sprintf("churn-%02d", i), v1alpha1.RoleReadWrite, "churn"))
			if rng.IntN(4) == 0 {
				h.restart(rng)
			}
		}
		for range 3 {
			h.restart(rng)
		}
		for i, b := range made {
			if i%2 == 0 {
				if err := c.Delete(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if rng.IntN(4) == 0 {
				h.restart(rng)
			}
		}
		for range 3 {
			h.restart(rng)
		}
		for i, b := range made {
			if i%2 == 0 {
				managertest.WaitGone(t, c, b)
			} else {
				h.bound(b, nil)
			}
		}
		want := []string{names.UserName(names.UserStem("apps", "orders-app"), 1)}
		for i := 1; i < 20; i += 2 {
			want = append(want, names.UserName(names.UserStem("apps", made[i].Name), 0))
		}
		if got := h.users(); !slices.Equal(got, sorted(want)) {
			t.Fatalf("users %q, want one per binding: %q", got, sorted(want))
		}
	})

	t.Run("deleting the instance deletes its bindings first, which drop their users", func(t *testing.T) {
		if err := c.Delete(ctx, h.inst); err != nil {
			t.Fatal(err)
		}
		managertest.WaitGone(t, c, h.inst)
		list := &v1alpha1.ServiceBindingList{}
		if err := c.List(ctx, list); err != nil || len(list.Items) != 0 {
			t.Fatalf("bindings left: %v %d", err, len(list.Items))
		}
		if got := h.users(); len(got) != 0 {
			t.Fatalf("users left: %q", got)
		}
		secrets := &corev1.SecretList{}
		if err := c.List(ctx, secrets, client.HasLabels{binding.BindingLabel}); err != nil || len(secrets.Items) != 0 {
			t.Fatalf("binding Secrets left: %v %d", err, len(secrets.Items))
		}
	})
}

// restart stops the operator after a random moment of work and starts a new one: reconciles in
// flight are cut off where they are.
func (h *bindingHarness) restart(rng *rand.Rand) {
	time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
	h.mgr.Stop()
	h.startOperator()
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
