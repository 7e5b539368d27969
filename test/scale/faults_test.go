package scale

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/binding"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// The operator killed (SIGKILL) 20 times at random moments while instances and bindings are
// created and deleted, and the API server restarted while the operator makes them, leave, once it
// has converged, nothing behind and nothing twice: every instance and binding that is wanted is
// Ready, every one deleted is gone, no object Datafleet labelled belongs to an instance or binding
// that is gone (or has an owner that is gone), and each instance holds exactly one user per binding
// of it. SCALE_FAULT_INSTANCES (default 20) instances, as many bindings; PostgreSQL and RabbitMQ,
// whose users the stand-in records (MongoDB's users live behind the wire protocol, which it does
// not play).
func TestTheOperatorKilledAndTheAPIServerRestartedLeaveNothingBehind(t *testing.T) {
	n := 20
	if v := envOr("SCALE_FAULT_INSTANCES", ""); v != "" {
		n, _ = strconv.Atoi(v)
	}
	const kills = 20
	f := startFleet(t, []string{"postgres", "rabbitmq"}, 4)
	ctx := context.Background()
	c := f.cp.env.Client

	// The operator is not killed while the API server is down: a new one would not start then
	// (in a cluster its pod would restart with a back-off; the harness does not play that).
	var outage sync.Mutex
	// The kills are spread over the time the test takes to create and delete (50 ms an instance,
	// 100 ms a deletion, and the outage): 0.5-3 s apart at 20 instances, up to 14 s at 1,000.
	window := time.Duration(n)*125*time.Millisecond + 15*time.Second
	gap := max(3*time.Second, 2*window/kills) - 500*time.Millisecond
	done := make(chan error)
	go func() {
		for range kills {
			time.Sleep(500*time.Millisecond + rand.N(gap))
			outage.Lock()
			f.op.stop()
			err := f.op.run()
			outage.Unlock()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	var instances, bindings []client.Object
	for i := range n {
		e := f.engines[i%len(f.engines)]
		si := &v1alpha1.ServiceInstance{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("tenant-%d", i%namespaces), Name: fmt.Sprintf("%s-%05d", e, i)},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: e, Replicas: new(int32(1)),
				// Claims go with the instance, so that a claim left is one forgotten.
				DeletionPolicy: v1alpha1.DeletionPolicyDelete},
		}
		sb := &v1alpha1.ServiceBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: si.Namespace, Name: "app-" + si.Name},
			Spec:       v1alpha1.ServiceBindingSpec{InstanceRef: v1alpha1.InstanceReference{Name: si.Name}},
		}
		for _, o := range []client.Object{si, sb} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		instances, bindings = append(instances, si), append(bindings, sb)
		time.Sleep(50 * time.Millisecond)
	}
	gone := map[types.NamespacedName]bool{}
	// What is not yet where it should be: wanted and not Ready, or deleted and still there.
	unsettled := func() []string {
		var pending []string
		for i := range n {
			for _, o := range []client.Object{instances[i], bindings[i]} {
				key := client.ObjectKeyFromObject(o)
				got := o.DeepCopyObject().(client.Object)
				err := c.Get(ctx, key, got)
				switch {
				case gone[key] && !apierrors.IsNotFound(err):
					pending = append(pending, fmt.Sprintf("%T %s still there (%v)", o, key, err))
				case !gone[key] && err != nil:
					t.Fatalf("%s, never deleted, is gone: %v", key, err)
				case !gone[key] && !ready(got):
					pending = append(pending, fmt.Sprintf("%T %s not Ready", o, key))
				}
			}
		}
		return pending
	}
	// The API server goes away while the operator makes those.
	outage.Lock()
	before := len(unsettled())
	f.cp.restartAPIServer(t, 10*time.Second)
	outage.Unlock()
	t.Logf("kube-apiserver killed, down 10 s and back, while %d of the %d instances and bindings were not yet Ready", before, 2*n)
	// Half of the instances go (their bindings with them, as the operator deletes them), and a
	// quarter of the bindings of those that stay, while the operator keeps being killed.
	time.Sleep(5 * time.Second)
	for i := range n {
		var victim client.Object
		switch {
		case i%2 == 1:
			victim = instances[i]
			gone[client.ObjectKeyFromObject(bindings[i])] = true
		case i%4 == 0:
			victim = bindings[i]
		default:
			continue
		}
		gone[client.ObjectKeyFromObject(victim)] = true
		if err := c.Delete(ctx, victim); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Converged: what is wanted is Ready, what was deleted is gone.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		pending := unsettled()
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged in 10 minutes after the last kill: %d left, for example:\n%s", len(pending), strings.Join(pending[:min(5, len(pending))], "\n"))
		}
		time.Sleep(time.Second)
	}

	// Nothing left behind: every object Datafleet labelled belongs to an instance or a binding
	// that is wanted, and every owner it names exists.
	live := map[types.UID]bool{}
	liveInstances, liveBindings := map[types.NamespacedName]bool{}, map[types.NamespacedName]bool{}
	for i := range n {
		for _, o := range []client.Object{instances[i], bindings[i]} {
			key := client.ObjectKeyFromObject(o)
			if gone[key] {
				continue
			}
			got := o.DeepCopyObject().(client.Object)
			if err := c.Get(ctx, key, got); err != nil {
				t.Fatal(err)
			}
			live[got.GetUID()] = true
			if _, ok := o.(*v1alpha1.ServiceInstance); ok {
				liveInstances[key] = true
			} else {
				liveBindings[key] = true
			}
		}
	}
	lists := []client.ObjectList{&corev1.SecretList{}, &corev1.ConfigMapList{}, &corev1.ServiceList{}, &appsv1.StatefulSetList{},
		&corev1.PersistentVolumeClaimList{}, &corev1.PodList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&coordinationv1.LeaseList{}, &policyv1.PodDisruptionBudgetList{}}
	checked := 0
	for _, list := range lists {
		if err := c.List(ctx, list, client.MatchingLabels{names.ManagedByLabel: names.ManagedBy}); err != nil {
			t.Fatal(err)
		}
		if err := meta.EachListItem(list, func(ro runtime.Object) error {
			o := ro.(client.Object)
			checked++
			ns := o.GetNamespace()
			if inst := o.GetLabels()[names.InstanceLabel]; inst != "" && !liveInstances[types.NamespacedName{Namespace: ns, Name: inst}] {
				t.Errorf("%T %s/%s belongs to instance %s, which is gone (made %s, deleted %v, owners %v, finalizers %v)", list, ns, o.GetName(), inst,
					o.GetCreationTimestamp().Format(time.TimeOnly), o.GetDeletionTimestamp(), o.GetOwnerReferences(), o.GetFinalizers())
			}
			if b := o.GetLabels()[binding.BindingLabel]; b != "" && !liveBindings[types.NamespacedName{Namespace: ns, Name: b}] {
				t.Errorf("%T %s/%s belongs to binding %s, which is gone", list, ns, o.GetName(), b)
			}
			for _, ref := range o.GetOwnerReferences() {
				if !live[ref.UID] && (ref.Kind == "ServiceInstance" || ref.Kind == "ServiceBinding") {
					t.Errorf("%T %s/%s is owned by %s %s, which is gone", list, ns, o.GetName(), ref.Kind, ref.Name)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// One user per binding, no more, none of a binding that is gone.
	for key := range liveInstances {
		var want []string
		for i := range n {
			if bk := client.ObjectKeyFromObject(bindings[i]); liveBindings[bk] && bindings[i].(*v1alpha1.ServiceBinding).Spec.InstanceRef.Name == key.Name && bk.Namespace == key.Namespace {
				want = append(want, names.UserStem(bk.Namespace, bk.Name))
			}
		}
		users := f.standIn.users.Users(key)
		if len(users) != len(want) {
			t.Errorf("instance %s holds users %v, want one for each of %v", key, users, want)
			continue
		}
		for _, stem := range want {
			if !containsUserOf(users, stem) {
				t.Errorf("instance %s holds users %v: none of binding stem %s", key, users, stem)
			}
		}
	}
	t.Logf("%d instances and %d bindings left of %d each, %d labelled objects checked", len(liveInstances), len(liveBindings), n, checked)
}

func ready(o client.Object) bool {
	switch o := o.(type) {
	case *v1alpha1.ServiceInstance:
		return o.Status.Phase == v1alpha1.PhaseReady && o.Status.ObservedGeneration == o.Generation
	case *v1alpha1.ServiceBinding:
		for _, c := range o.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status == metav1.ConditionTrue && c.ObservedGeneration == o.Generation
			}
		}
	}
	return false
}

func containsUserOf(users []string, stem string) bool {
	for _, u := range users {
		if names.IsUserOf(stem, u) {
			return true
		}
	}
	return false
}
