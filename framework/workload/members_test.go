package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent"
)

func TestUnreadyMember(t *testing.T) {
	pods := []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "db-0"}}, {ObjectMeta: metav1.ObjectMeta{Name: "db-1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db-2"}}}
	up := &agent.Status{Ready: true, Role: "replica"}
	starting := &agent.Status{Role: "replica", Detail: "the database system is starting up"}
	for _, c := range []struct {
		statuses []*agent.Status
		replicas int32
		want     string
	}{
		{[]*agent.Status{up, up, up}, 3, ""},
		{[]*agent.Status{up, nil, up}, 3, "db-1's agent does not answer"},
		{[]*agent.Status{up, up, starting}, 3, "db-2's agent reports its engine not ready: the database system is starting up"},
		{[]*agent.Status{up, up, nil}, 2, ""}, // db-2 is leaving after a scale-down
	} {
		if got := UnreadyMember(pods, c.statuses, c.replicas); got != c.want {
			t.Errorf("%d replicas, %v: %q, want %q", c.replicas, c.statuses, got, c.want)
		}
	}
}

func TestMissingMember(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](3)}}
	pod := func(name string) corev1.Pod { return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	for _, c := range []struct {
		pods []corev1.Pod
		want string
	}{
		{[]corev1.Pod{pod("db-0"), pod("db-1"), pod("db-2")}, ""},
		{[]corev1.Pod{pod("db-0"), pod("db-1"), pod("db-2"), pod("db-3")}, ""}, // db-3 is leaving after a scale-down
		{[]corev1.Pod{pod("db-0"), pod("db-2")}, "db-1"},
		{nil, "db-0"},
	} {
		if got := MissingMember(inst, c.pods); got != c.want {
			t.Errorf("%v: %q, want %q", c.pods, got, c.want)
		}
	}
}
