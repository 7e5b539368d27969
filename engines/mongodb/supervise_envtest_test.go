package mongodb

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// electedSet stands in for a replica set's mongod processes, which cannot run on these machines:
// each member's role as `hello` would report it, and an election when the primary steps down.
// The agents' HTTP side in front of it is the real one (agentruntime.Handler).
type electedSet struct {
	mu    sync.Mutex
	roles map[string]string
}

func (s *electedSet) role(pod string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roles[pod]
}

func (s *electedSet) set(pod, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[pod] = role
}

// member is one pod's agent over electedSet.
type member struct {
	set *electedSet
	pod string
}

func (member) Bootstrap(context.Context) error { return nil }
func (member) Command() *exec.Cmd              { return nil }
func (member) StopSignal() os.Signal           { return syscall.SIGTERM }

func (m member) Status(context.Context) fwagent.Status {
	role := m.set.role(m.pod)
	return fwagent.Status{Ready: role != "", Role: role}
}

// Act steps down as replSetStepDown would: the lowest-ordinal other member is elected.
func (m member) Act(_ context.Context, action string, _ url.Values) error {
	if action != mongoagent.ActionStepDown {
		return fmt.Errorf("no action %q here", action)
	}
	m.set.mu.Lock()
	defer m.set.mu.Unlock()
	if m.set.roles[m.pod] != mongoagent.RolePrimary {
		return nil
	}
	others := []string{}
	for p := range m.set.roles {
		if p != m.pod {
			others = append(others, p)
		}
	}
	slices.Sort(others)
	m.set.roles[m.pod], m.set.roles[others[0]] = mongoagent.RoleReplica, mongoagent.RolePrimary
	return nil
}

// The supervisor on a real API server, with the agents' real HTTP interface over a stand-in for
// mongod: the primary the agents report is labelled (and nobody while two claim it), and a
// rolling update replaces the secondaries highest ordinal first, then the primary, only after it
// stepped down and another member took over.
func TestRolesAndRollingUpdateFollowTheAgents(t *testing.T) {
	set := &electedSet{roles: map[string]string{"catalog-0": mongoagent.RolePrimary, "catalog-1": mongoagent.RoleReplica, "catalog-2": mongoagent.RoleReplica}}
	addrs, servers := map[string]string{}, []*httptest.Server{}
	for pod := range set.roles {
		srv := httptest.NewUnstartedServer(agentruntime.Handler(member{set: set, pod: pod}))
		t.Cleanup(srv.Close)
		addrs[pod], servers = srv.Listener.Addr().String(), append(servers, srv)
	}
	e := Engine{agentAt: func(p *corev1.Pod) string { return addrs[p.Name] }}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, Replicas: ptr.To[int32](3)}}
	c := managertest.Settled(t, e, release, inst, func(inst *v1alpha1.ServiceInstance) error {
		if ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady); ready == nil || ready.Reason != "NoPrimary" {
			return testenv.Errorf("Ready %+v", ready)
		}
		return nil
	})
	ctx := context.Background()
	// The agents serve with the certificate the operator issued the instance, as the pods mount it.
	agentTLS := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: certs.AgentSecretName("catalog")}, agentTLS); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range agentTLS.Data {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serverTLS, err := agentruntime.ServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range servers {
		srv.TLS = serverTLS
		srv.StartTLS()
	}

	// The StatefulSet controller's part: pods of a revision, running and ready.
	createPod := func(name, revision string) {
		t.Helper()
		labels := names.InstanceLabels(Name, "catalog")
		labels[appsv1.ControllerRevisionHashLabelKey] = revision
		managertest.RunningPod(t, c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: Name, Image: release.Image}},
				Volumes: []corev1.Volume{workload.SecretVolume(fwagent.TLSVolume, certs.AgentSecretName("catalog"))}}})
	}
	// poke changes a pod, as a readiness change would: an election alone sends no event.
	poke := func() {
		t.Helper()
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace("apps")); err != nil || len(pods.Items) == 0 {
			t.Fatalf("no pod to poke: %v", err)
		}
		p := &pods.Items[0]
		patched := p.DeepCopy()
		patched.Annotations = map[string]string{"test/poke": time.Now().String()}
		if err := c.Patch(ctx, patched, client.MergeFrom(p)); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
	}
	labelled := func(want map[string]string, reason string) func() error {
		return func() error {
			for pod, role := range want {
				p := &corev1.Pod{}
				if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: pod}, p); err != nil {
					return err
				}
				if got := p.Labels[workload.RoleLabel]; got != role {
					return testenv.Errorf("%s labelled %q, want %q", pod, got, role)
				}
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
				return err
			}
			ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Reason != reason {
				return testenv.Errorf("Ready %+v, want reason %s", ready, reason)
			}
			return nil
		}
	}
	for _, pod := range []string{"catalog-0", "catalog-1", "catalog-2"} {
		createPod(pod, "rev")
	}
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": mongoagent.RolePrimary, "catalog-1": mongoagent.RoleReplica, "catalog-2": mongoagent.RoleReplica}, "Ready"))
	if inst.Status.CurrentPrimary != "catalog-0" {
		t.Errorf("currentPrimary %q", inst.Status.CurrentPrimary)
	}

	// Two members claim primary for a moment after an election: nobody is labelled.
	set.set("catalog-1", mongoagent.RolePrimary)
	poke()
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": "", "catalog-1": "", "catalog-2": mongoagent.RoleReplica}, "TwoPrimaries"))
	set.set("catalog-1", mongoagent.RoleReplica)
	poke()
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": mongoagent.RolePrimary, "catalog-1": mongoagent.RoleReplica}, "Ready"))

	// A member whose mongod stopped serving while its pod (and so the StatefulSet) still counts
	// it ready: the instance is not Ready until its agent says so again.
	set.set("catalog-2", "")
	poke()
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": mongoagent.RolePrimary, "catalog-2": ""}, "MemberNotReady"))
	set.set("catalog-2", mongoagent.RoleReplica)
	poke()
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": mongoagent.RolePrimary, "catalog-2": mongoagent.RoleReplica}, "Ready"))

	// A new revision: the StatefulSet controller re-creates each pod the supervisor deletes.
	sts := &appsv1.StatefulSet{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(inst), sts); err != nil {
		t.Fatal(err)
	}
	sts.Status.UpdateRevision = "rev2"
	if err := c.Status().Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	poke()
	var order []string
	roleWhenReplaced := map[string]string{}
	for range 3 {
		var gone string
		testenv.Eventually(t, time.Minute, func() error {
			for _, pod := range []string{"catalog-0", "catalog-1", "catalog-2"} {
				err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: pod}, &corev1.Pod{})
				if apierrors.IsNotFound(err) {
					gone = pod
					return nil
				}
			}
			return testenv.Errorf("no pod replaced yet (replaced so far: %v)", order)
		})
		order = append(order, gone)
		roleWhenReplaced[gone] = set.role(gone)
		createPod(gone, "rev2")
	}
	if want := []string{"catalog-2", "catalog-1", "catalog-0"}; !slices.Equal(order, want) {
		t.Errorf("pods replaced in the order %v, want %v", order, want)
	}
	if roleWhenReplaced["catalog-0"] != mongoagent.RoleReplica {
		t.Errorf("catalog-0 was replaced as %q: the primary must step down first", roleWhenReplaced["catalog-0"])
	}
	testenv.Eventually(t, time.Minute, func() error { // the rollout is done
		if err := c.Get(ctx, client.ObjectKeyFromObject(inst), sts); err != nil {
			return err
		}
		sts.Status.CurrentRevision = "rev2"
		return c.Status().Update(ctx, sts)
	})
	testenv.Eventually(t, time.Minute, labelled(map[string]string{"catalog-0": mongoagent.RoleReplica, "catalog-1": mongoagent.RolePrimary, "catalog-2": mongoagent.RoleReplica}, "Ready"))
}
