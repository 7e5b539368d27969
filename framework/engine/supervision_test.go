package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

func rollingSupervision(ready bool) *Supervision {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	s := &Supervision{
		SuperviseInput: SuperviseInput{Instance: &v1alpha1.ServiceInstance{Spec: v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](2)}}},
		Workload: &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2)},
			Status: appsv1.StatefulSetStatus{UpdateRevision: "new"}},
		Observation: Observation{Ready: true},
	}
	for i, rev := range []string{"old", "old"} {
		s.Pods = append(s.Pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "db-" + string(rune('0'+i)), Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}},
			Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}})
	}
	return s
}

// The framework's part of a rolling replacement: it waits while a pod is not ready or the engine
// holds the rollout, offers the engine's choice of pod to its Before, and replaces nothing Before
// refuses (no client is given: a replacement would fail the test).
func TestRollWaitsAndAsksTheEngine(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		ready, held bool
		want        string
	}{
		"a pod not ready": {false, false, "2 pods to update; waiting for every pod to be ready"},
		"held":            {true, true, "2 pods to update; waiting for a primary"},
	} {
		s := rollingSupervision(c.ready)
		rolling, err := s.Roll(ctx, Roll{Held: c.held, Waiting: map[bool]string{true: "a primary"}[c.held],
			Before: func(context.Context, *corev1.Pod, []*corev1.Pod) (bool, error) {
				t.Fatalf("%s: Before was asked", name)
				return false, nil
			}})
		if err != nil || !rolling || s.Reason != "RollingUpdate" || s.Message != c.want {
			t.Errorf("%s: rolling %v, %v, %s: %q; want %q", name, rolling, err, s.Reason, s.Message, c.want)
		}
	}
	s := rollingSupervision(true)
	var asked string
	rolling, err := s.Roll(ctx, Roll{
		Next: func(outdated []*corev1.Pod) *corev1.Pod { return outdated[len(outdated)-1] },
		Before: func(_ context.Context, p *corev1.Pod, outdated []*corev1.Pod) (bool, error) {
			asked = p.Name
			s.Wait("RollingUpdate", "stepping down first", time.Second)
			return false, nil
		}})
	if err != nil || !rolling || asked != "db-0" || s.Message != "stepping down first" {
		t.Errorf("Before asked about %q (want db-0, the engine's Next); rolling %v, %v, %q", asked, rolling, err, s.Message)
	}
	if rolling, _ := (&Supervision{Pods: s.Pods}).Roll(ctx, Roll{}); rolling {
		t.Error("a rollout without a live StatefulSet")
	}
}

// The first reason wins; Unready does not hide a waiting step's reason nor a generic one, and
// Poll is the requeue only when no step waits.
func TestResultFoldsReasons(t *testing.T) {
	s := &Supervision{Observation: Observation{Ready: true}, Poll: time.Minute}
	s.Unready("NoPrimary", "no primary yet")
	if obs, after := s.Result(); obs.Ready || obs.Reason != "NoPrimary" || after != time.Minute {
		t.Errorf("Unready alone: %+v, requeue %s", obs, after)
	}
	s = &Supervision{Observation: Observation{Ready: true}, Poll: time.Minute}
	s.Wait("RollingUpdate", "replacing db-1", 2*time.Second)
	s.Wait("MemberNotReady", "db-0's agent", time.Second)
	s.Unready("NoPrimary", "no primary yet")
	if obs, after := s.Result(); obs.Reason != "RollingUpdate" || !strings.Contains(obs.Message, "db-1") || after != time.Second {
		t.Errorf("two waits and Unready: %+v, requeue %s; want the first reason and the soonest requeue", obs, after)
	}
	s = &Supervision{Observation: Observation{Ready: false, Reason: "NotReady", Message: "rolling out"}}
	s.Unready("NoPrimary", "no primary yet")
	if obs, _ := s.Result(); obs.Reason != "NotReady" {
		t.Errorf("Unready hid the generic reason: %+v", obs)
	}
}
