package agent

import (
	"context"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// synchronous_commit is a per-session setting in PostgreSQL that no privilege guards, and the
// operator does not take it away (docs/postgres.md says what it costs). What holds: a binding's
// user who lowers it makes only its own commits return without a standby; another binding's
// commits on the same instance still wait for one.
func TestLoweredSynchronousCommitSparesOnlyItsOwnSession(t *testing.T) {
	rs := newReplicaSet(t, 2, "synchronous_standby_names = '"+SynchronousStandbyNames(1, []string{"pg-0", "pg-1"})+"'\n")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	p := rs.members["pg-0"].e
	careless, careful := names.UserStem("apps", "careless")+"_0", names.UserStem("apps", "careful")+"_0"
	ensure(t, p, careless, "c-secret", v1alpha1.RoleAdmin, "app")
	ensure(t, p, careful, "k-secret", v1alpha1.RoleReadWrite, "app")
	tenantExec(t, p, careless, "c-secret", "app", "CREATE TABLE t (v text)")

	rs.members["pg-1"].r.stop(t) // no standby confirms a commit any more
	tenantExec(t, p, careless, "c-secret", "app", "SET synchronous_commit = local", "INSERT INTO t VALUES ('careless')")

	conn := mustLogin(t, p, careful, "k-secret", "app")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ('careful')"); ctx.Err() == nil {
		t.Fatalf("another binding's commit returned without a standby: %v", err)
	}
}
