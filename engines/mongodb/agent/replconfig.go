// This file holds the replica-set configuration the agent computes: pure functions, so that what
// is sent to replSetInitiate and replSetReconfig is decided (and tested) without a server.
package agent

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// maxVoting is MongoDB's limit of voting members in a replica set; members beyond it join with
// no vote and no priority.
const maxVoting = 7

// replSetMember is one member of a replica-set configuration (the fields replSetReconfig takes that the
// operator decides; the others keep MongoDB's defaults).
type replSetMember struct {
	ID       int     `bson:"_id"`
	Host     string  `bson:"host"`
	Priority float64 `bson:"priority"`
	Votes    int     `bson:"votes"`
}

// replSetConfig is a replica-set configuration.
type replSetConfig struct {
	Name    string          `bson:"_id"`
	Version int             `bson:"version"`
	Members []replSetMember `bson:"members"`
}

// initialReplSet is the configuration the first member initiates the set with: itself alone. The others
// are added one at a time by nextReplSet, as MongoDB's safe reconfiguration requires.
func initialReplSet(name, host string) replSetConfig {
	return replSetConfig{Name: name, Version: 1, Members: []replSetMember{{ID: 0, Host: host, Priority: 1, Votes: 1}}}
}

// nextReplSet is the next configuration on the way from cur to the members in want: one member removed
// (the highest ordinal first) or else one added (the lowest first), never both, because a
// reconfiguration may change at most one voting member. ok is false when cur already has exactly
// want. Members keep their _id; a new member takes the lowest _id free. Votes go to the first
// maxVoting members by ordinal.
func nextReplSet(cur replSetConfig, want []string) (next replSetConfig, ok bool) {
	next = replSetConfig{Name: cur.Name, Version: cur.Version + 1, Members: slices.Clone(cur.Members)}
	wanted := map[string]bool{}
	for _, h := range want {
		wanted[h] = true
	}
	// Remove the member not wanted with the highest ordinal.
	var gone []replSetMember
	for _, m := range next.Members {
		if !wanted[m.Host] {
			gone = append(gone, m)
		}
	}
	if len(gone) > 0 {
		last := slices.MaxFunc(gone, func(a, b replSetMember) int { return cmp.Compare(ordinal(a.Host), ordinal(b.Host)) })
		next.Members = slices.DeleteFunc(next.Members, func(m replSetMember) bool { return m.Host == last.Host })
		return withVotes(next), true
	}
	have := map[string]bool{}
	for _, m := range next.Members {
		have[m.Host] = true
	}
	var missing []string
	for _, h := range want {
		if !have[h] {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		if v := withVotes(next); !slices.Equal(v.Members, cur.Members) {
			return v, true
		}
		return cur, false
	}
	host := slices.MinFunc(missing, func(a, b string) int { return cmp.Compare(ordinal(a), ordinal(b)) })
	next.Members = append(next.Members, replSetMember{ID: freeID(next.Members), Host: host})
	return withVotes(next), true
}

// withVotes gives a vote and priority 1 to the first maxVoting members by ordinal, none to the rest.
func withVotes(c replSetConfig) replSetConfig {
	slices.SortFunc(c.Members, func(a, b replSetMember) int { return cmp.Compare(ordinal(a.Host), ordinal(b.Host)) })
	for i := range c.Members {
		if i < maxVoting {
			c.Members[i].Votes, c.Members[i].Priority = 1, 1
		} else {
			c.Members[i].Votes, c.Members[i].Priority = 0, 0
		}
	}
	return c
}

func freeID(ms []replSetMember) int {
	for id := 0; ; id++ {
		if !slices.ContainsFunc(ms, func(m replSetMember) bool { return m.ID == id }) {
			return id
		}
	}
}

// ordinal is the pod ordinal in a member host "<instance>-<i>.<service>...:port" (-1 if none).
func ordinal(host string) int {
	pod, _, _ := strings.Cut(host, ".")
	i := strings.LastIndex(pod, "-")
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(pod[i+1:])
	if err != nil {
		return -1
	}
	return n
}
