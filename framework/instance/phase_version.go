package instance

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
)

// resolveVersion turns spec.version into an image through the engine's VersionCatalog. A missing
// catalog or unknown version is a spec problem: it is reported, not retried; a catalog change
// triggers a new reconcile through the catalog watch.
func (r *Reconciler) resolveVersion(ctx context.Context, s *scope) (bool, error) {
	cat := &v1alpha1.VersionCatalog{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.Engine.Name()}, cat); err != nil {
		if ignoreGone(err) != nil {
			return false, describeErr("reading VersionCatalog", err)
		}
		msg := fmt.Sprintf("no VersionCatalog named %q exists: the platform team must create one listing the %s versions offered",
			r.Engine.Name(), r.Engine.Name())
		s.support = &catalog.Support{Reason: catalog.ReasonNoCatalog, Message: msg}
		s.fail(catalog.ReasonNoCatalog, msg)
		return true, nil
	}
	s.catalog = cat
	running := s.inst.Status.Version
	requested := s.inst.Spec.Version
	if requested == "" && running != "" {
		// The catalog's default applies once, at creation: a new default must not move running
		// instances to another version (a major one would not even start on the old data).
		requested = running
	}
	rel, err := catalog.Resolve(cat, requested)
	if err == nil && running != "" && rel.Version != running {
		// The webhook refuses a version change without an in-place path; this catches one that got
		// past it (failurePolicy Ignore, a webhook not installed), before any pod is rolled. The
		// support condition stays about the version that runs.
		if _, err := catalog.CheckChange(cat, running, requested, r.now()); err != nil {
			var re *catalog.ResolveError
			if !errors.As(err, &re) {
				return false, err
			}
			if cur, err := catalog.Resolve(cat, running); err == nil {
				sup := catalog.SupportAt(cur, r.now(), cat.Spec.WarningDays)
				s.support = &sup
			}
			s.fail(re.Reason, re.Message)
			return true, nil
		}
	}
	if err != nil {
		var re *catalog.ResolveError
		if !errors.As(err, &re) {
			return false, err
		}
		s.support = &catalog.Support{Reason: re.Reason, Message: re.Message}
		s.fail(re.Reason, re.Message)
		return true, nil
	}
	s.release = rel
	now := r.now()
	sup := catalog.SupportAt(rel, now, cat.Spec.WarningDays)
	s.support = &sup
	// Look again when the condition would change on its own: at the start of the warning window,
	// then each time the days left go down by one, until the sundown.
	s.requeue(catalog.NextSupportChange(rel, now, cat.Spec.WarningDays))
	return false, nil
}
