package rabbitmq

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// checkRollGate runs the supervisor's rolling step against a real cluster of three local nodes
// and pods on a real API server (envtest, no kubelet: the pods' readiness is given, and each pod
// stands for one local node). A quorum queue with two members makes both of its nodes
// quorum-critical: an outdated pod on one of them is not replaced, and the reason names the
// queue; an outdated pod on the third node is.
func checkRollGate(t *testing.T, nodes []*localNode) {
	t.Helper()
	ctx := context.Background()
	ch := channel(t, nodes[0])
	if _, err := ch.QueueDeclare("pair", true, false, false, false,
		amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": 2}); err != nil {
		t.Fatal(err)
	}
	var q struct {
		Members []string `json:"members"`
	}
	if _, err := nodes[0].management().get(ctx, "/api/queues/"+url.PathEscape("/")+"/pair", &q); err != nil || len(q.Members) != 2 {
		t.Fatalf("the queue's members: %v %v", err, q.Members)
	}
	member, other := -1, -1
	for i, n := range nodes {
		if slices.Contains(q.Members, n.name) {
			member = i
		} else {
			other = i
		}
	}

	env := testenv.Start(t)
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: "default"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Replicas: ptr.To[int32](3)}}
	live := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)},
		Status: appsv1.StatefulSetStatus{UpdateRevision: "new"}}
	// roll asks the node of the pod it would replace; only the outdated pod is.
	roll := func(outdated int) (*supervision, *corev1.Pod) {
		t.Helper()
		var pods []corev1.Pod
		for i := range nodes {
			rev := "new"
			if i == outdated {
				rev = "old"
			}
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: workload.PodName(inst, i), Namespace: "default",
				Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: Name, Image: "rabbitmq"}}}}
			if err := env.Client.Create(ctx, p); apierrors.IsAlreadyExists(err) {
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
					t.Fatal(err)
				}
				p.Labels[appsv1.ControllerRevisionHashLabelKey] = rev
				if err := env.Client.Update(ctx, p); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			pods = append(pods, *p)
		}
		s := &supervision{Supervision: &engine.Supervision{SuperviseInput: engine.SuperviseInput{Instance: inst, Client: env.Client},
			Pods: pods, Workload: live},
			cluster:    map[string]clusterNode{},
			management: func(p *corev1.Pod) management { return nodes[workload.Ordinal(p.Name)].management() }}
		if _, err := s.roll(ctx); err != nil {
			t.Fatal(err)
		}
		return s, &pods[outdated]
	}
	gone := func(p *corev1.Pod) bool {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p)
		return apierrors.IsNotFound(err) || (err == nil && !p.DeletionTimestamp.IsZero())
	}

	s, p := roll(member)
	if gone(p) {
		t.Fatalf("%s was replaced although its node holds a member of a two-member quorum queue", p.Name)
	}
	if !strings.Contains(s.Message, "quorum-critical") || !strings.Contains(s.Message, "queue 'pair' in vhost '/'") {
		t.Errorf("the roll waits with %s: %q; want the quorum-critical queue named", s.Reason, s.Message)
	}
	s, p = roll(other)
	if !gone(p) {
		t.Fatalf("%s was not replaced although its node is not quorum-critical: %s %s", p.Name, s.Reason, s.Message)
	}
	if _, err := ch.QueueDelete("pair", false, false, false); err != nil {
		t.Fatal(err)
	}
}
