package agent

import (
	"context"
	"fmt"
	"testing"
)

// A restore's swap stopped after each of its steps (as a killed agent stops: each statement is
// atomic, the crash falls between two), then recovered as the next restore or a new primary's
// agent does: the database takes connections and holds either all the old rows or all the new
// ones, never neither; nothing of the swap is left behind. Also with no original database.
func TestASwapInterruptedAtAnyStepLeavesTheOldOrTheNewDatabase(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	conn, err := e.primaryConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := ensureSwapJournal(ctx, conn); err != nil {
		t.Fatal(err)
	}
	d := databaseInfo{Name: "app"}
	side := sideName(restorePrefix, d.Name)
	setup := func(original bool) {
		t.Helper()
		stmts := []string{"DROP DATABASE IF EXISTS app WITH (FORCE)", "DROP DATABASE IF EXISTS " + ident(side) + " WITH (FORCE)",
			"CREATE DATABASE " + ident(side)}
		if original {
			stmts = append(stmts, "CREATE DATABASE app")
		}
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if original {
			execSQLIn(t, e, "app", "CREATE TABLE t AS SELECT 'old' AS v")
		}
		execSQLIn(t, e, side, "CREATE TABLE t AS SELECT 'new' AS v")
	}
	steps := swapSteps(d)
	for _, original := range []bool{true, false} {
		for k := 0; k <= len(steps); k++ {
			t.Run(fmt.Sprintf("original=%v/stopped after %d of %d steps", original, k, len(steps)), func(t *testing.T) {
				setup(original)
				for _, step := range steps[:k] {
					if err := step(ctx, conn); err != nil {
						t.Fatal(err)
					}
				}
				if err := recoverSwaps(ctx, conn); err != nil {
					t.Fatal(err)
				}
				if k == 0 {
					// Stopped before the swap began: what was there before is (the side database
					// stays until the next restore drops it, as any restore's leftover).
					if got := query(t, e, "SELECT count(*)::text FROM pg_database WHERE datname = 'app'"); original && queryIn(t, e, "app", "SELECT v FROM t") != "old" || !original && got != "0" {
						t.Fatalf("a swap that never began changed app")
					}
					return
				}
				got := queryIn(t, e, "app", "SELECT v FROM t")
				if got != "old" && got != "new" || !original && got != "new" {
					t.Fatalf("after recovery app holds %q", got)
				}
				if k == len(steps) && got != "new" {
					t.Fatalf("a finished swap was undone: app holds %q", got)
				}
				left := query(t, e, "SELECT count(*)::text FROM pg_database WHERE datname LIKE 'dfre%'")
				journal := queryIn(t, e, "postgres", "SELECT count(*)::text FROM "+swapJournal)
				if left != "0" || journal != "0" {
					t.Fatalf("after recovery: %s side databases and %s journal entries left", left, journal)
				}
			})
		}
	}
}
