package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A replica that replayed records the elected member never received is rewound, not left
// following a timeline that forked off before its replay position (the chaos step's failure:
// ledger-1's receiver was restarted for minutes while postgres refused the new timeline). pg-2
// is stopped, pg-1 replays one more asynchronous record than pg-2 has, the primary stops, and
// pg-2 is elected without pg-1 (as when pg-1 was not ready for the election). pg-1's agent must
// stop its postgres and start it again itself, after rewinding it to follow pg-2.
func TestAReplicaAheadOfTheElectedMemberIsRewound(t *testing.T) {
	rs := newReplicaSet(t, 3, "")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	execSQL(t, rs.members["pg-0"].e, "CREATE TABLE orders (id int PRIMARY KEY, what text)", "INSERT INTO orders VALUES (1, 'everywhere')")
	for _, name := range []string{"pg-1", "pg-2"} {
		rs.start(name)
		rs.waitRole(name, "replica")
		rs.waitRow(name, "SELECT what FROM orders WHERE id = 1", "everywhere")
	}

	rs.members["pg-2"].r.stop(t)
	execSQL(t, rs.members["pg-0"].e, "INSERT INTO orders VALUES (2, 'only pg-0 and pg-1')")
	rs.waitRow("pg-1", "SELECT count(*) FROM orders", "2")
	rs.members["pg-0"].r.stop(t)

	rs.start("pg-2")
	testenv.Eventually(t, 30*time.Second, func() error {
		l := rs.lease()
		if !primary.Read(l).Vacant(time.Now()) {
			return fmt.Errorf("lease still held by %s", primary.Read(l).Holder)
		}
		_, err := primary.Assign(context.Background(), rs.env.Client, l, "pg-2", time.Now())
		return err
	})
	rs.waitRole("pg-2", "primary")
	execSQL(t, rs.members["pg-2"].e, "INSERT INTO orders VALUES (3, 'from pg-2')")

	rs.restartedInPlace("pg-1", "stopping to rewind this member")
	testenv.Eventually(t, 2*time.Minute, func() error {
		conn, err := dbaConnect(context.Background(), rs.members["pg-1"].e, "postgres")
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var ids string
		if err := conn.QueryRow(context.Background(), "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders").Scan(&ids); err != nil {
			return err
		}
		if ids != "1,3" {
			return fmt.Errorf("pg-1 has orders %s, want pg-2's 1,3", ids)
		}
		return nil
	})
	rs.waitRole("pg-1", "replica")
}

func TestForkedBefore(t *testing.T) {
	history := "1\t0/3000000\tno recovery target specified\n\n2\t0/5000060\tno recovery target specified\n"
	for _, c := range []struct {
		name     string
		theirs   uint32
		history  string
		mine     uint32
		replayed uint64
		diverged bool
	}{
		{"same timeline", 3, history, 3, 0x9000000, false},
		{"on the parent, before the fork", 3, history, 2, 0x5000060, false},
		{"on the parent, past the fork", 3, history, 2, 0x5000100, true},
		{"on an older ancestor, before its end", 3, history, 1, 0x2000000, false},
		{"on a timeline the primary never had", 3, history, 4, 0x1000000, true},
		{"a primary on timeline 1, a replica on 2", 1, "", 2, 0x1000000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			why, err := forkedBefore(c.theirs, c.history, c.mine, c.replayed)
			if err != nil {
				t.Fatal(err)
			}
			if (why != "") != c.diverged {
				t.Errorf("forkedBefore = %q, want diverged %v", why, c.diverged)
			}
		})
	}
	if _, err := forkedBefore(3, "2\tnot-a-position\n", 2, 1); err == nil {
		t.Error("a malformed history was accepted")
	}
}
