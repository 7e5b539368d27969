package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Actions of a plan's point-in-time drill (engine.MarkerWriter), on the primary.
const (
	ActionWriteMarker  = "write-marker"
	ActionCheckMarkers = "check-markers"
)

// Parameters of the drill's actions; times are RFC 3339 with nanoseconds.
const (
	ParamMarker  = "marker"
	ParamBefore  = "before"
	ParamAfter   = "after"
	ParamPresent = "present"
	ParamAbsent  = "absent"
)

// The drills' markers are rows of a table in the maintenance database, where no binding is
// granted anything; the schema and the table must belong to the superuser, or the agent neither
// writes (a trigger of someone else's would run as the superuser) nor trusts them (a forged row
// would pass a drill).
const (
	markerSchema = "datafleet"
	markerTable  = "drill_markers"
	markers      = markerSchema + "." + markerTable
	// markerKeep bounds the table: a weekly drill writes two rows.
	markerKeep = "90 days"
)

var markerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$`)

// writeMarker implements engine.MarkerWriter.WriteMarker on the primary.
func (e *Engine) writeMarker(ctx context.Context, id string, before, after time.Time) error {
	if !markerName.MatchString(id) {
		return fmt.Errorf("marker %q: not a name the operator gives", id)
	}
	conn, err := e.primaryConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := ensureMarkerTable(ctx, conn); err != nil {
		return err
	}
	if !after.IsZero() {
		// Checked before the insert, so the commit follows it.
		var past bool
		if err := conn.QueryRow(ctx, `SELECT pg_catalog.clock_timestamp() > $1`, after).Scan(&past); err != nil {
			return err
		}
		if !past {
			return fmt.Errorf("marker %s: the database's clock has not passed %s yet", id, after.UTC().Format(time.RFC3339Nano))
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+markers+` (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, id); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+markers+` WHERE written_at < pg_catalog.clock_timestamp() - interval '`+markerKeep+`'`); err != nil {
		return err
	}
	if before.IsZero() {
		return nil
	}
	// Checked after the commit, so the commit came before it.
	var early bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.clock_timestamp() < $1`, before).Scan(&early); err != nil {
		return err
	}
	if early {
		return nil
	}
	if _, err := conn.Exec(ctx, `DELETE FROM `+markers+` WHERE id = $1`, id); err != nil {
		return err
	}
	return fmt.Errorf("marker %s committed after %s by the database's clock: removed", id, before.UTC().Format(time.RFC3339Nano))
}

// checkMarkers implements engine.MarkerWriter.CheckMarkers on the primary.
func (e *Engine) checkMarkers(ctx context.Context, present, absent []string) error {
	conn, err := e.primaryConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var held []string
	switch err := checkMarkerTable(ctx, conn); {
	case errors.Is(err, errNoMarkerTable):
	case err != nil:
		return err
	default:
		rows, err := conn.Query(ctx, `SELECT id FROM `+markers+` WHERE id = ANY($1) ORDER BY id`, append(slices.Clone(present), absent...))
		if err != nil {
			return err
		}
		if held, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
	}
	var wrong []string
	for _, m := range present {
		if !slices.Contains(held, m) {
			wrong = append(wrong, "marker "+m+" is missing")
		}
	}
	for _, m := range absent {
		if slices.Contains(held, m) {
			wrong = append(wrong, "marker "+m+" is present")
		}
	}
	if len(wrong) > 0 {
		return errors.New(strings.Join(wrong, "; "))
	}
	return nil
}

var errNoMarkerTable = errors.New("no marker table")

// ensureMarkerTable creates the markers' schema and table if absent and checks they are the
// superuser's.
func ensureMarkerTable(ctx context.Context, conn *pgx.Conn) error {
	for _, sql := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + markerSchema,
		`CREATE TABLE IF NOT EXISTS ` + markers +
			` (id pg_catalog.text PRIMARY KEY, written_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp())`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return checkMarkerTable(ctx, conn)
}

// checkMarkerTable returns errNoMarkerTable without the schema or the table, and an error
// unless both are the current user's (the superuser's).
func checkMarkerTable(ctx context.Context, conn *pgx.Conn) error {
	var schemaOwned, tableExists, tableOwned bool
	err := conn.QueryRow(ctx, `SELECT n.nspowner = u.oid, c.oid IS NOT NULL, c.relowner IS NOT DISTINCT FROM u.oid
		FROM pg_catalog.pg_namespace n
		JOIN pg_catalog.pg_roles u ON u.rolname = CURRENT_USER
		LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = $2 AND c.relkind = 'r'
		WHERE n.nspname = $1`, markerSchema, markerTable).Scan(&schemaOwned, &tableExists, &tableOwned)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || err == nil && !tableExists:
		return errNoMarkerTable
	case err != nil:
		return err
	case !schemaOwned || !tableOwned:
		return fmt.Errorf("%s in the maintenance database is not the superuser's: refusing to use it for drill markers", markers)
	}
	return nil
}

// optionalTime parses an RFC 3339 time, the zero time from nothing.
func optionalTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("not a time: %q", s)
	}
	return t, nil
}
