// Package catalog resolves a ServiceInstance's version through its engine's VersionCatalog.
package catalog

import (
	"cmp"
	"fmt"
	"slices"
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
	slices.SortFunc(out, CompareVersions)
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

// NextSupportChange is how long until SupportAt(rel, ...) says something else than at now: the
// warning window opening, the days left going down by one, or the sundown. Zero when nothing
// will change.
func NextSupportChange(rel Release, now time.Time, warningDays int32) time.Duration {
	if rel.Sundown == nil || !now.Before(*rel.Sundown) {
		return 0
	}
	const day = 24 * time.Hour
	left := rel.Sundown.Sub(now)
	if warn := time.Duration(warningDays) * day; left >= warn {
		// SupportAt warns once the whole days left are fewer than warningDays.
		return left - warn + time.Second
	}
	return left%day + time.Second
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

// Offered lists the versions a new instance may use at now (past their sunrise, before their
// sundown), sorted.
func Offered(cat *v1alpha1.VersionCatalog, now time.Time) []string {
	var out []string
	for _, v := range cat.Spec.Versions {
		if offeredAt(release(v), now) == "" {
			out = append(out, v.Version)
		}
	}
	slices.SortFunc(out, CompareVersions)
	return out
}

// offeredAt says why a new instance may not use rel at now; empty when it may.
func offeredAt(rel Release, now time.Time) string {
	switch {
	case rel.Sunrise != nil && now.Before(*rel.Sunrise):
		return fmt.Sprintf("version %s is offered from %s", rel.Version, rel.Sunrise.UTC().Format(time.DateOnly))
	case rel.Sundown != nil && !now.Before(*rel.Sundown):
		return fmt.Sprintf("version %s reached its sundown on %s", rel.Version, rel.Sundown.UTC().Format(time.DateOnly))
	}
	return ""
}

// CheckNew resolves the version a new instance asks for and refuses one outside its support
// window, naming the versions offered now.
func CheckNew(cat *v1alpha1.VersionCatalog, requested string, now time.Time) (Release, error) {
	rel, err := Resolve(cat, requested)
	if err != nil {
		return rel, err
	}
	if why := offeredAt(rel, now); why != "" {
		return rel, &ResolveError{Reason: ReasonNotOffered, Message: fmt.Sprintf(
			"%s: new instances cannot use it; versions offered now: %s", why, listOrNone(Offered(cat, now)))}
	}
	return rel, nil
}

// Reasons CheckChange refuses a version change with.
const (
	ReasonNotOffered      = "VersionNotOffered"
	ReasonDowngrade       = "Downgrade"
	ReasonNoUpgradePath   = "NoUpgradePath"
	ReasonBlueGreenOnly   = "BlueGreenOnly"
	ReasonTargetSundowned = "TargetPastSundown"
)

// CheckChange decides whether an instance running version from may change spec.version to
// requested in place. A refusal names the versions it may move to and, for a blue/green path,
// how to take it.
func CheckChange(cat *v1alpha1.VersionCatalog, from, requested string, now time.Time) (Release, error) {
	to, err := Resolve(cat, requested)
	if err != nil || to.Version == from {
		return to, err
	}
	paths := upgradesFrom(cat, from)
	refuse := func(reason, format string, args ...any) (Release, error) {
		return to, &ResolveError{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	if c := CompareVersions(to.Version, from); c < 0 || c == 0 && len(to.Version) < len(from) {
		// "15" after "15.1" is a downgrade too: catalog versions are compared in full.
		return refuse(ReasonDowngrade, "%s -> %s is a downgrade, which no engine supports in place; %s",
			from, to.Version, allowedTargets(from, paths))
	}
	path, ok := Path(cat, from, to.Version)
	switch {
	case !ok:
		return refuse(ReasonNoUpgradePath, "the %s VersionCatalog has no upgrade path %s -> %s; %s",
			cat.Name, from, to.Version, allowedTargets(from, paths))
	case path.Method == v1alpha1.UpgradeBlueGreen:
		return refuse(ReasonBlueGreenOnly, "%s -> %s cannot be done in place%s. Move blue/green: back up this instance, "+
			"create a Restore with target.newInstance {name: <new instance>, version: %q} from that backup, "+
			"move clients to the new instance, then delete this one (docs/upgrades.md)",
			from, to.Version, withNote(path.Note), to.Version)
	}
	if to.Sundown != nil && !now.Before(*to.Sundown) {
		return refuse(ReasonTargetSundowned, "version %s reached its sundown on %s; %s",
			to.Version, to.Sundown.UTC().Format(time.DateOnly), allowedTargets(from, paths))
	}
	return to, nil
}

// CheckBlueGreen decides whether a backup of an instance on version from may be restored into a
// new instance on version to: the same version, or any upgrade path of the catalog (in place or
// blue/green); never a downgrade.
func CheckBlueGreen(cat *v1alpha1.VersionCatalog, from, to string) error {
	if from == to {
		return nil
	}
	if _, ok := Path(cat, from, to); ok {
		return nil
	}
	return &ResolveError{Reason: ReasonNoUpgradePath, Message: fmt.Sprintf(
		"the %s VersionCatalog has no upgrade path %s -> %s; %s", cat.Name, from, to, allowedTargets(from, upgradesFrom(cat, from)))}
}

// Path returns the upgrade path from -> to in the catalog, if there is one.
func Path(cat *v1alpha1.VersionCatalog, from, to string) (v1alpha1.UpgradePath, bool) {
	paths := upgradesFrom(cat, from)
	if i := slices.IndexFunc(paths, func(p v1alpha1.UpgradePath) bool { return p.To == to }); i >= 0 {
		return paths[i], true
	}
	return v1alpha1.UpgradePath{}, false
}

// upgradesFrom is the catalog's list of upgrade paths of version from (none when it is not listed).
func upgradesFrom(cat *v1alpha1.VersionCatalog, from string) []v1alpha1.UpgradePath {
	for _, v := range cat.Spec.Versions {
		if v.Version == from {
			return v.Upgrades
		}
	}
	return nil
}

func allowedTargets(from string, paths []v1alpha1.UpgradePath) string {
	var inPlace, blueGreen []string
	for _, p := range paths {
		if p.Method == v1alpha1.UpgradeBlueGreen {
			blueGreen = append(blueGreen, p.To)
		} else {
			inPlace = append(inPlace, p.To)
		}
	}
	slices.SortFunc(inPlace, CompareVersions)
	slices.SortFunc(blueGreen, CompareVersions)
	msg := fmt.Sprintf("%s may move in place to: %s", from, listOrNone(inPlace))
	if len(blueGreen) > 0 {
		msg += fmt.Sprintf("; blue/green (restore into a new instance) to: %s", strings.Join(blueGreen, ", "))
	}
	return msg
}

func listOrNone(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, ", ")
}

func withNote(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}
