package postgres

import (
	"context"
	"net/url"
	"time"

	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

var _ engine.MarkerWriter = Engine{}

// WriteMarker implements engine.MarkerWriter through the primary's agent, which keeps the markers
// in a table of the superuser's in the maintenance database.
func (Engine) WriteMarker(ctx context.Context, in engine.MarkerInput, id string, before, after time.Time) error {
	p := url.Values{pgagent.ParamMarker: {id}}
	if !before.IsZero() {
		p.Set(pgagent.ParamBefore, before.UTC().Format(time.RFC3339Nano))
	}
	if !after.IsZero() {
		p.Set(pgagent.ParamAfter, after.UTC().Format(time.RFC3339Nano))
	}
	return actOn(ctx, in, pgagent.ActionWriteMarker, p)
}

// CheckMarkers implements engine.MarkerWriter through the primary's agent.
func (Engine) CheckMarkers(ctx context.Context, in engine.MarkerInput, present, absent []string) error {
	return actOn(ctx, in, pgagent.ActionCheckMarkers, url.Values{pgagent.ParamPresent: present, pgagent.ParamAbsent: absent})
}
