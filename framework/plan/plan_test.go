package plan

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func small() *v1alpha1.ServicePlan {
	return &v1alpha1.ServicePlan{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Spec: v1alpha1.ServicePlanSpec{
		Engine: "postgres", Replicas: ptr.To[int32](2), StorageSize: q("5Gi"),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: *q("250m"), corev1.ResourceMemory: *q("512Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: *q("512Mi")},
		},
		AllowedTransitions: []string{"medium", "large"},
	}}
}

func TestApplyFillsOnlyWhatTheInstanceLeavesUnset(t *testing.T) {
	spec := v1alpha1.ServiceInstanceSpec{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: *q("100m")}}}
	Apply(&spec, small())
	if *spec.Replicas != 2 || spec.Storage.Size.String() != "5Gi" {
		t.Errorf("replicas %d, storage %v: want the plan's 2 and 5Gi", *spec.Replicas, spec.Storage)
	}
	if cpu, mem := spec.Resources.Requests[corev1.ResourceCPU], spec.Resources.Requests[corev1.ResourceMemory]; cpu.String() != "100m" || mem.String() != "512Mi" {
		t.Errorf("requests %v: want the instance's own cpu and the plan's memory", spec.Resources.Requests)
	}
	own := v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](1), Storage: &v1alpha1.StorageSpec{Size: *q("1Gi")}}
	Apply(&own, small())
	if *own.Replicas != 1 || own.Storage.Size.String() != "1Gi" {
		t.Errorf("the instance's own replicas and storage were replaced: %d, %v", *own.Replicas, own.Storage.Size)
	}
	p := small()
	Apply(&own, p)
	own.Resources.Requests[corev1.ResourceCPU] = *q("4")
	if c := p.Spec.Resources.Requests[corev1.ResourceCPU]; c.String() != "250m" {
		t.Errorf("Apply shares the plan's resource list: the plan now says %s", c.String())
	}
}

func TestCheckLimits(t *testing.T) {
	withLimits := small()
	withLimits.Spec.Limits = &v1alpha1.PlanLimits{MinReplicas: ptr.To[int32](2), MaxReplicas: ptr.To[int32](5), MaxStorageSize: q("50Gi"),
		MaxResources: corev1.ResourceList{corev1.ResourceMemory: *q("2Gi")}}
	for _, tc := range []struct {
		name string
		plan *v1alpha1.ServicePlan
		spec v1alpha1.ServiceInstanceSpec
		want []string
	}{
		{"nothing of its own", small(), v1alpha1.ServiceInstanceSpec{}, nil},
		{"at the plan's values", small(), v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](2), Storage: &v1alpha1.StorageSpec{Size: *q("5Gi")}}, nil},
		{"above the plan's values without limits", small(), v1alpha1.ServiceInstanceSpec{
			Replicas: ptr.To[int32](3), Storage: &v1alpha1.StorageSpec{Size: *q("6Gi")},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: *q("1Gi"), corev1.ResourceCPU: *q("8")}}},
			[]string{
				"spec.replicas: Invalid value: 3: plan small allows at most 2 replicas",
				`spec.storage.size: Invalid value: "6Gi": plan small allows at most 5Gi per replica`,
				`spec.resources.limits[memory]: Invalid value: "1Gi": plan small allows at most 512Mi`,
			}},
		{"within limits", withLimits, v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](5), Storage: &v1alpha1.StorageSpec{Size: *q("50Gi")},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: *q("2Gi")}}}, nil},
		{"outside limits", withLimits, v1alpha1.ServiceInstanceSpec{Replicas: ptr.To[int32](1), Storage: &v1alpha1.StorageSpec{Size: *q("51Gi")},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: *q("3Gi")}}},
			[]string{
				"spec.replicas: Invalid value: 1: plan small allows 2 to 5 replicas",
				`spec.storage.size: Invalid value: "51Gi": plan small allows at most 50Gi per replica`,
				`spec.resources.requests[memory]: Invalid value: "3Gi": plan small allows at most 2Gi`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range Check(&tc.spec, tc.plan) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCheckTransition(t *testing.T) {
	for _, tc := range []struct {
		from       *v1alpha1.ServicePlan
		fromName   string
		to, reason string
	}{
		{nil, "", "small", ""},
		{small(), "small", "small", ""},
		{small(), "small", "large", ""},
		{nil, "gone", "tiny", ""},
		{small(), "small", "tiny", "spec.plan: Forbidden: plan small does not allow moving to tiny; it may move to: large, medium"},
		{small(), "small", "", "spec.plan: Forbidden: an instance cannot leave its plan small; it may move to: large, medium"},
	} {
		err := CheckTransition(tc.from, tc.fromName, tc.to)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.reason {
			t.Errorf("%s -> %s: got %q, want %q", tc.fromName, tc.to, got, tc.reason)
		}
	}
}
