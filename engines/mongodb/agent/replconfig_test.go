package agent

import (
	"fmt"
	"slices"
	"testing"
)

// hosts are the member hosts of instance "db" in namespace "shop" (mongodb.MemberHost).
func hosts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("db-%d.db-pods.shop.svc:%d", i, Port)
	}
	return out
}

// converge applies nextReplSet until it settles, as the agent does one replSetReconfig at a time, and
// returns every configuration on the way.
func converge(t *testing.T, cur replSetConfig, want []string) []replSetConfig {
	t.Helper()
	var steps []replSetConfig
	for range 20 {
		next, ok := nextReplSet(cur, want)
		if !ok {
			return steps
		}
		if d := votingChanges(cur, next); d > 1 {
			t.Fatalf("one reconfiguration changed %d voting members: %+v -> %+v", d, cur.Members, next.Members)
		}
		if next.Version != cur.Version+1 {
			t.Fatalf("version %d after %d", next.Version, cur.Version)
		}
		steps = append(steps, next)
		cur = next
	}
	t.Fatal("nextReplSet did not settle in 20 steps")
	return nil
}

func votingChanges(a, b replSetConfig) int {
	voters := func(c replSetConfig) map[string]bool {
		m := map[string]bool{}
		for _, x := range c.Members {
			if x.Votes > 0 {
				m[x.Host] = true
			}
		}
		return m
	}
	va, vb, n := voters(a), voters(b), 0
	for h := range va {
		if !vb[h] {
			n++
		}
	}
	for h := range vb {
		if !va[h] {
			n++
		}
	}
	return n
}

func describe(c replSetConfig) string {
	s := ""
	for _, m := range c.Members {
		s += fmt.Sprintf("%d:%s/%d ", m.ID, m.Host[:4], m.Votes)
	}
	return s
}

func TestReplicaSetsOf1_3And5Members(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		want := hosts(n)
		steps := converge(t, initialReplSet("db", want[0]), want)
		if len(steps) != n-1 {
			t.Errorf("%d members: %d reconfigurations, want %d (one member each)", n, len(steps), n-1)
		}
		final := initialReplSet("db", want[0])
		if len(steps) > 0 {
			final = steps[len(steps)-1]
		}
		for i, m := range final.Members {
			if m.ID != i || m.Host != want[i] || m.Votes != 1 || m.Priority != 1 {
				t.Errorf("%d members: member %d is %+v", n, i, m)
			}
		}
		if final.Name != "db" || len(final.Members) != n {
			t.Errorf("%d members: %s", n, describe(final))
		}
	}
}

func TestAddingAndRemovingMembers(t *testing.T) {
	three := converge(t, initialReplSet("db", hosts(1)[0]), hosts(3))
	cur := three[len(three)-1]
	// 3 -> 5: the lowest missing ordinal first, with fresh _ids.
	up := converge(t, cur, hosts(5))
	if len(up) != 2 || up[0].Members[3].Host != hosts(5)[3] || up[1].Members[4].ID != 4 {
		t.Errorf("3 -> 5: %v", up)
	}
	// 5 -> 3: the highest ordinal leaves first; the others keep their _ids.
	down := converge(t, up[len(up)-1], hosts(3))
	if len(down) != 2 || slices.ContainsFunc(down[0].Members, func(m replSetMember) bool { return m.Host == hosts(5)[4] }) ||
		!slices.ContainsFunc(down[0].Members, func(m replSetMember) bool { return m.Host == hosts(5)[3] }) {
		t.Errorf("5 -> 3: %v", down)
	}
	if final := down[len(down)-1]; describe(final) != describe(cur) {
		t.Errorf("back to 3: %s, want %s", describe(final), describe(cur))
	}
	// A replaced member with a hole in the _ids: the new one takes the free _id.
	holed := replSetConfig{Name: "db", Version: 7, Members: []replSetMember{{ID: 0, Host: hosts(3)[0], Votes: 1, Priority: 1}, {ID: 2, Host: hosts(3)[2], Votes: 1, Priority: 1}}}
	next, ok := nextReplSet(holed, hosts(3))
	if !ok || next.Version != 8 || next.Members[1].ID != 1 || next.Members[1].Host != hosts(3)[1] {
		t.Errorf("filling a hole: %s", describe(next))
	}
	// Beyond seven members, the eighth and later join without a vote.
	nine := converge(t, initialReplSet("db", hosts(1)[0]), hosts(9))
	final := nine[len(nine)-1]
	for i, m := range final.Members {
		if want := map[bool]int{true: 1, false: 0}[i < maxVoting]; m.Votes != want || m.Priority != float64(want) {
			t.Errorf("9 members: member %d votes %d priority %v", i, m.Votes, m.Priority)
		}
	}
	if _, ok := nextReplSet(final, hosts(9)); ok {
		t.Error("a settled configuration changed again")
	}
}
