package engine

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// MarkerWriter is implemented by ContinuousArchivers whose point-in-time restores a plan's drill
// proves with marker rows. The drill writes one marker on the instance just before a target time
// and one just after it, restores the plan's newest physical backup to the target into a scratch
// instance, and passes only if that instance holds the first marker and not the second. Markers
// live where only the operator writes (PostgreSQL: a table of the superuser's in the maintenance
// database, which no binding is granted), so a tenant can neither forge nor hide one.
type MarkerWriter interface {
	// WriteMarker writes the marker named id on the instance's primary, unless it is there
	// already (a repeated request succeeds). With before set it succeeds only if the marker
	// committed before that time by the database's own clock (the clock its recovery targets
	// follow), removing a marker that came too late; with after set it writes nothing until the
	// database's clock is past it (an error the drill answers by asking again a moment later), so
	// that the marker commits after it.
	WriteMarker(ctx context.Context, in MarkerInput, id string, before, after time.Time) error
	// CheckMarkers returns nil if the instance holds every marker of present and none of absent,
	// and otherwise an error naming each that differs.
	CheckMarkers(ctx context.Context, in MarkerInput, present, absent []string) error
}

// MarkerInput is what a MarkerWriter may use.
type MarkerInput struct {
	Instance *v1alpha1.ServiceInstance
	// Client reads from the manager's cache (the engine finds the instance's primary).
	Client client.Reader
	// Agents reaches the instance's agents with the operator's client certificate.
	Agents fwagent.Dialer
}
