package primary

import (
	"fmt"
	"sort"
	"strings"
)

// Position is how far a member has received the primary's writes: a history (PostgreSQL's
// timeline) and an offset in it (the WAL position). Later histories win.
type Position struct {
	History uint64 `json:"history"`
	Offset  uint64 `json:"offset"`
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	if p.History != q.History {
		return p.History < q.History
	}
	return p.Offset < q.Offset
}

// Candidate is a member that might become primary.
type Candidate struct {
	Name string
	// Healthy members run their engine as a replica and answered the operator.
	Healthy  bool
	Position Position
}

// Elect picks the new primary: the healthy candidate with the most advanced position, preferring
// `preferred` among equals and then the lowest name, so that the choice is deterministic.
//
// quorum is how many healthy candidates must answer before anyone is chosen. Under synchronous
// replication a commit is on at least one of any `replicas - synchronous + 1` replicas, so electing
// among fewer could lose a committed write; the caller passes that number (1 otherwise).
func Elect(candidates []Candidate, preferred string, quorum int) (string, error) {
	var healthy []Candidate
	var down []string
	for _, c := range candidates {
		if c.Healthy {
			healthy = append(healthy, c)
		} else {
			down = append(down, c.Name)
		}
	}
	if len(healthy) == 0 || len(healthy) < quorum {
		return "", fmt.Errorf("%d healthy replicas answered, %d needed to be sure no committed write is lost (not answering: %s)",
			len(healthy), max(quorum, 1), strings.Join(down, ", "))
	}
	sort.Slice(healthy, func(i, j int) bool {
		a, b := healthy[i], healthy[j]
		if a.Position != b.Position {
			return b.Position.Less(a.Position)
		}
		if (a.Name == preferred) != (b.Name == preferred) {
			return a.Name == preferred
		}
		return a.Name < b.Name
	})
	return healthy[0].Name, nil
}
