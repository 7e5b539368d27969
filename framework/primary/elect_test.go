package primary

import (
	"strings"
	"testing"
)

func TestElectPicksTheMostAdvancedHealthyReplica(t *testing.T) {
	at := func(h, o uint64) Position { return Position{History: h, Offset: o} }
	for _, tc := range []struct {
		name      string
		cands     []Candidate
		preferred string
		quorum    int
		want      string
		wantErr   string
	}{
		{name: "most advanced wins over the preferred", cands: []Candidate{
			{Name: "a", Healthy: true, Position: at(1, 100)}, {Name: "b", Healthy: true, Position: at(1, 200)}},
			preferred: "a", quorum: 1, want: "b"},
		{name: "a later history wins over a larger offset", cands: []Candidate{
			{Name: "a", Healthy: true, Position: at(1, 900)}, {Name: "b", Healthy: true, Position: at(2, 10)}},
			quorum: 1, want: "b"},
		{name: "preferred wins a tie", cands: []Candidate{
			{Name: "a", Healthy: true, Position: at(1, 5)}, {Name: "c", Healthy: true, Position: at(1, 5)}},
			preferred: "c", quorum: 1, want: "c"},
		{name: "lowest name wins a tie otherwise", cands: []Candidate{
			{Name: "c", Healthy: true, Position: at(1, 5)}, {Name: "a", Healthy: true, Position: at(1, 5)}},
			quorum: 1, want: "a"},
		{name: "unhealthy members are never elected", cands: []Candidate{
			{Name: "a", Healthy: false, Position: at(9, 9)}, {Name: "b", Healthy: true, Position: at(1, 1)}},
			quorum: 1, want: "b"},
		{name: "synchronous quorum not met", cands: []Candidate{
			{Name: "a", Healthy: false}, {Name: "b", Healthy: true, Position: at(1, 1)}},
			quorum: 2, wantErr: "1 healthy replicas answered, 2 needed"},
		{name: "nobody", quorum: 1, wantErr: "0 healthy replicas answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Elect(tc.cands, tc.preferred, tc.quorum)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
