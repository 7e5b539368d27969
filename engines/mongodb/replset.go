// This file holds what the operator decides about the replica set: its members' addresses and the
// order a rolling restart replaces them in. The configuration itself is the agent's
// (engines/mongodb/agent/replconfig.go).
package mongodb

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// MemberHost is the address of pod ordinal i of an instance, through its headless Service: stable
// across pod restarts, which is what a replica-set configuration needs.
func MemberHost(inst *v1alpha1.ServiceInstance, i int) string {
	return fmt.Sprintf("%s:%d", workload.MemberHost(inst, i), mongoagent.Port)
}

// RollOrder is the order a rolling restart replaces the pods in: the secondaries first, highest
// ordinal first, then the primary last, after it was asked to step down.
func RollOrder(pods []string, primary string) []string {
	out := slices.Clone(pods)
	slices.SortFunc(out, func(a, b string) int {
		switch {
		case a == primary:
			return 1
		case b == primary:
			return -1
		}
		return cmp.Compare(workload.Ordinal(b), workload.Ordinal(a))
	})
	return out
}
