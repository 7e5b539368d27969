package agent

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A drill's markers against a real PostgreSQL: written before a time only if they committed
// before it (a late one is removed), after a time only once the database's clock has passed it,
// a repeated request is fine, and the check names what differs.
func TestDrillMarkers(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	mark := func(id string, before, after time.Time) error {
		p := url.Values{ParamMarker: {id}}
		if !before.IsZero() {
			p.Set(ParamBefore, before.Format(time.RFC3339Nano))
		}
		if !after.IsZero() {
			p.Set(ParamAfter, after.Format(time.RFC3339Nano))
		}
		return e.Act(ctx, ActionWriteMarker, p)
	}
	check := func(present, absent []string) error {
		return e.Act(ctx, ActionCheckMarkers, url.Values{ParamPresent: present, ParamAbsent: absent})
	}
	if err := check([]string{"drill-a"}, nil); err == nil || !strings.Contains(err.Error(), "marker drill-a is missing") {
		t.Fatalf("before any marker (no table yet): %v", err)
	}
	target := time.Now().Add(2 * time.Second)
	if err := mark("drill-a", target, time.Time{}); err != nil {
		t.Fatalf("a marker before %s: %v", target, err)
	}
	if err := mark("drill-a", target, time.Time{}); err != nil {
		t.Fatalf("the same marker again: %v", err)
	}
	if err := mark("drill-b", time.Time{}, target); err == nil || !strings.Contains(err.Error(), "has not passed") {
		t.Fatalf("a marker after %s, asked before it: %v", target, err)
	}
	if err := check([]string{"drill-a"}, []string{"drill-b"}); err != nil {
		t.Fatalf("after the first marker: %v", err)
	}
	time.Sleep(time.Until(target) + 100*time.Millisecond)
	if err := mark("drill-b", time.Time{}, target); err != nil {
		t.Fatalf("a marker after %s: %v", target, err)
	}
	if got := query(t, e, "SELECT ((SELECT written_at FROM datafleet.drill_markers WHERE id = 'drill-a') < '"+target.Format(time.RFC3339Nano)+
		"'::timestamptz AND (SELECT written_at FROM datafleet.drill_markers WHERE id = 'drill-b') > '"+target.Format(time.RFC3339Nano)+"'::timestamptz)::text"); got != "true" {
		t.Fatalf("the markers are not on either side of %s", target)
	}
	if err := check([]string{"drill-a"}, []string{"drill-b"}); err == nil || !strings.Contains(err.Error(), "marker drill-b is present") {
		t.Fatalf("with both markers, checked for the first alone: %v", err)
	}
	if err := mark("drill-c", time.Now().Add(-time.Second), time.Time{}); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("a marker that commits after its time: %v", err)
	}
	if err := check(nil, []string{"drill-c"}); err != nil {
		t.Fatalf("the late marker stayed: %v", err)
	}
	if err := mark("Robert'); DROP TABLE x; --", time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "not a name") {
		t.Fatalf("a marker named like SQL: %v", err)
	}
}

// A marker table that is not the superuser's (made by someone else before the first drill) is
// neither written to, which would run its owner's triggers as the superuser, nor trusted, which
// would let a forged row pass a drill.
func TestDrillMarkersRefuseATableTheSuperuserDoesNotOwn(t *testing.T) {
	e := &Engine{Config: newConfig(t)}
	start(t, e)
	ctx := context.Background()
	execSQL(t, e, "CREATE ROLE intruder", "CREATE SCHEMA datafleet AUTHORIZATION intruder",
		"CREATE TABLE datafleet.drill_markers (id text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
		"ALTER TABLE datafleet.drill_markers OWNER TO intruder", "INSERT INTO datafleet.drill_markers (id) VALUES ('forged')")
	err := e.Act(ctx, ActionWriteMarker, url.Values{ParamMarker: {"drill-a"}})
	if err == nil || !strings.Contains(err.Error(), "not the superuser's") {
		t.Fatalf("writing into another's marker table: %v", err)
	}
	err = e.Act(ctx, ActionCheckMarkers, url.Values{ParamPresent: {"forged"}})
	if err == nil || !strings.Contains(err.Error(), "not the superuser's") {
		t.Fatalf("trusting another's marker table: %v", err)
	}
	if got := query(t, e, "SELECT count(*)::text FROM datafleet.drill_markers"); got != "1" {
		t.Fatalf("the table holds %s rows, want only the forged one", got)
	}
}
