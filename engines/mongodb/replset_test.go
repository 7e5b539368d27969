package mongodb

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

var shopDB = &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}}

func hosts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = MemberHost(shopDB, i)
	}
	return out
}

func TestMemberHost(t *testing.T) {
	if got := MemberHost(shopDB, 2); got != "db-2.db-pods.shop.svc:27017" {
		t.Errorf("MemberHost = %s", got)
	}
}

func TestRollingRestartOrder(t *testing.T) {
	for _, tc := range []struct {
		pods    []string
		primary string
		want    []string
	}{
		{[]string{"db-0"}, "db-0", []string{"db-0"}},
		{[]string{"db-0", "db-1", "db-2"}, "db-0", []string{"db-2", "db-1", "db-0"}},
		{[]string{"db-0", "db-1", "db-2"}, "db-2", []string{"db-1", "db-0", "db-2"}},
		{[]string{"db-2", "db-0", "db-1", "db-4", "db-3"}, "db-1", []string{"db-4", "db-3", "db-2", "db-0", "db-1"}},
		{[]string{"db-0", "db-1", "db-2"}, "", []string{"db-2", "db-1", "db-0"}}, // no primary (an election): highest first
	} {
		if got := RollOrder(tc.pods, tc.primary); !slices.Equal(got, tc.want) {
			t.Errorf("pods %v, primary %q: order %v, want %v", tc.pods, tc.primary, got, tc.want)
		}
	}
}
