// Package catalog resolves a ServiceInstance's version through its engine's VersionCatalog.
package catalog

import (
	"cmp"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// Release is a version resolved to the image that runs it.
type Release struct {
	Version string
	Image   string
	Sunrise *time.Time
	Sundown *time.Time
}

// Support describes where a release is in its support window at a given time.
type Support struct {
	Supported bool
	Reason    string
	Message   string
}

// Reasons for the VersionSupported condition.
const (
	ReasonSupported      = "Supported"
	ReasonNearingSundown = "NearingSundown"
	ReasonPastSundown    = "PastSundown"
	ReasonUnknownVersion = "UnknownVersion"
	ReasonNoDefault      = "NoDefaultVersion"
	ReasonNoCatalog      = "CatalogNotFound"
)

// ResolveError says why a version could not be resolved, in words a developer understands.
type ResolveError struct {
	Reason  string
	Message string
}

func (e *ResolveError) Error() string { return e.Message }

// Resolve finds the release for the requested version (the catalog's default when empty).
func Resolve(cat *v1alpha1.VersionCatalog, requested string) (Release, error) {
	if requested == "" {
		for _, v := range cat.Spec.Versions {
			if v.Default {
				return release(v), nil
			}
		}
		return Release{}, &ResolveError{Reason: ReasonNoDefault, Message: fmt.Sprintf(
			"spec.version is empty and the %s VersionCatalog has no default version; set spec.version to one of: %s",
			cat.Name, strings.Join(Versions(cat), ", "))}
	}
	for _, v := range cat.Spec.Versions {
		if v.Version == requested {
			return release(v), nil
		}
	}
	return Release{}, &ResolveError{Reason: ReasonUnknownVersion, Message: fmt.Sprintf(
		"version %q is not in the %s VersionCatalog; supported versions: %s",
		requested, cat.Name, strings.Join(Versions(cat), ", "))}
}

// Versions lists the catalog's versions, sorted.
func Versions(cat *v1alpha1.VersionCatalog) []string {
	out := make([]string, 0, len(cat.Spec.Versions))
	for _, v := range cat.Spec.Versions {
		out = append(out, v.Version)
	}
	sort.Strings(out)
	return out
}

// SupportAt tells where rel stands in its support window at now. Past sundown an instance keeps
// running; only the condition changes.
func SupportAt(rel Release, now time.Time, warningDays int32) Support {
	if rel.Sundown == nil {
		return Support{Supported: true, Reason: ReasonSupported, Message: fmt.Sprintf("version %s is supported", rel.Version)}
	}
	left := rel.Sundown.Sub(now)
	days := int(left.Hours() / 24)
	switch {
	case left <= 0:
		return Support{Supported: false, Reason: ReasonPastSundown, Message: fmt.Sprintf(
			"version %s reached its sundown on %s; the instance keeps running but is no longer supported: upgrade it",
			rel.Version, rel.Sundown.UTC().Format(time.DateOnly))}
	case days < int(warningDays):
		return Support{Supported: true, Reason: ReasonNearingSundown, Message: fmt.Sprintf(
			"version %s reaches its sundown on %s (%d days left): plan an upgrade",
			rel.Version, rel.Sundown.UTC().Format(time.DateOnly), days)}
	}
	return Support{Supported: true, Reason: ReasonSupported, Message: fmt.Sprintf(
		"version %s is supported until %s", rel.Version, rel.Sundown.UTC().Format(time.DateOnly))}
}

func release(v v1alpha1.CatalogVersion) Release {
	r := Release{Version: v.Version, Image: v.Image}
	if v.Sunrise != nil {
		t := v.Sunrise.Time
		r.Sunrise = &t
	}
	if v.Sundown != nil {
		t := v.Sundown.Time
		r.Sundown = &t
	}
	return r
}

// CompareVersions orders two dotted versions by their numeric components, as far as both have
// components: "17" and "17.2" are equal, "15.8" is before "17". Components that are not numbers
// compare as text.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		switch {
		case errx == nil && erry == nil && x != y:
			return cmp.Compare(x, y)
		case (errx != nil || erry != nil) && as[i] != bs[i]:
			return strings.Compare(as[i], bs[i])
		}
	}
	return 0
}
