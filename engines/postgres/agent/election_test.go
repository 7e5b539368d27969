package agent

import (
	"fmt"
	"testing"
)

// What a replica reports for the election must be where its WAL is, not where its last
// restartpoint was. A replica whose WAL receiver is not connected (its primary is gone, which is
// when an election happens) used to report the timeline of its control file's checkpoint: a
// member that had made a restartpoint on the newest timeline then beat one that had made none
// since the last failover, however far behind it was, and the commits only the other had were
// lost (the chaos step's 15.8 s failover elected ledger-1, 184 bytes behind ledger-2, which then
// rewound). Here the member behind (pg-0) has made a restartpoint on timeline 2 and the member
// ahead (the other replica) has made none since it switched to timeline 2: the member ahead must
// be elected and keep every committed row.
func TestTheMemberAheadIsElectedWhateverItsLastRestartpoint(t *testing.T) {
	// No timed restartpoint: the member ahead keeps timeline 1 in its control file throughout.
	rs := newReplicaSet(t, 3, "synchronous_standby_names = '"+SynchronousStandbyNames(1, []string{"pg-0", "pg-1", "pg-2"})+"'\n"+
		"checkpoint_timeout = '1d'\nmax_wal_size = '10GB'\n")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	for _, name := range []string{"pg-1", "pg-2"} {
		rs.start(name)
		rs.waitRole(name, "replica")
	}
	execSQL(t, rs.members["pg-0"].e, "CREATE TABLE orders (id int PRIMARY KEY, what text)", "INSERT INTO orders VALUES (1, 'on timeline 1')")
	for _, name := range []string{"pg-1", "pg-2"} {
		rs.waitRow(name, "SELECT what FROM orders WHERE id = 1", "on timeline 1")
	}

	// A failover to timeline 2; the other replica follows the new primary.
	rs.members["pg-0"].r.stop(t)
	leader := rs.elect("pg-1", 2)
	ahead := map[string]string{"pg-1": "pg-2", "pg-2": "pg-1"}[leader]
	rs.waitRole(leader, "primary")
	execSQL(t, rs.members[leader].e, "INSERT INTO orders VALUES (2, 'on timeline 2')")
	rs.waitRow(ahead, "SELECT what FROM orders WHERE id = 2", "on timeline 2")

	// pg-0 rejoins and makes a restartpoint on timeline 2 (as a member whose pod restarted does).
	rs.start("pg-0")
	rs.waitRole("pg-0", "replica")
	execSQL(t, rs.members[leader].e, "CHECKPOINT", "INSERT INTO orders VALUES (3, 'after the checkpoint')")
	rs.waitRow("pg-0", "SELECT what FROM orders WHERE id = 3", "after the checkpoint")
	execSQL(t, rs.members["pg-0"].e, "CHECKPOINT")
	for name, want := range map[string]string{"pg-0": "2", ahead: "1"} {
		if got := query(t, rs.members[name].e, "SELECT timeline_id::text FROM pg_catalog.pg_control_checkpoint()"); got != want {
			t.Fatalf("%s's control file has its last restartpoint on timeline %s; the test needs %s", name, got, want)
		}
	}

	// pg-0 stops; the leader commits rows that only it and the member ahead hold, then stops too.
	rs.members["pg-0"].r.stop(t)
	for i := 10; i < 20; i++ {
		execSQL(t, rs.members[leader].e, fmt.Sprintf("INSERT INTO orders VALUES (%d, 'confirmed by %s')", i, ahead))
	}
	rs.waitRow(ahead, "SELECT count(*)::text FROM orders", "13")
	rs.members[leader].r.stop(t)

	// pg-0 is back, behind; neither replica has a primary to stream from.
	rs.start("pg-0")
	rs.waitRole("pg-0", "replica")
	behind, front := rs.members["pg-0"].r.status(t).Position, rs.members[ahead].r.status(t).Position
	t.Logf("pg-0 (behind) reports %+v, %s (ahead) %+v", behind, ahead, front)
	if winner := rs.elect("", 2); winner != ahead {
		t.Fatalf("%s was elected; %s holds the 10 rows committed after it stopped (positions: pg-0 %+v, %s %+v)", winner, ahead, behind, ahead, front)
	}
	rs.waitRole(ahead, "primary")
	if got := query(t, rs.members[ahead].e, "SELECT count(*)::text FROM orders"); got != "13" {
		t.Fatalf("the new primary %s has %s rows, want all 13 committed", ahead, got)
	}
	rs.waitRow("pg-0", "SELECT count(*)::text FROM orders", "13")
}
