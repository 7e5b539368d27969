package catalog

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

func TestResolve(t *testing.T) {
	cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{
		Versions: []v1alpha1.CatalogVersion{{Version: "17", Image: "pg:17"}, {Version: "15", Image: "pg:15", Default: true}}}}
	for _, tc := range []struct{ in, image, reason string }{
		{"", "pg:15", ""},
		{"17", "pg:17", ""},
		{"16", "", ReasonUnknownVersion},
	} {
		rel, err := Resolve(cat, tc.in)
		if tc.reason == "" {
			if err != nil || rel.Image != tc.image {
				t.Errorf("Resolve(%q) = %+v, %v", tc.in, rel, err)
			}
			continue
		}
		re, ok := err.(*ResolveError)
		if !ok || re.Reason != tc.reason || re.Message != `version "16" is not in the postgres VersionCatalog; supported versions: 15, 17` {
			t.Errorf("Resolve(%q) error = %v", tc.in, err)
		}
	}
	cat.Spec.Versions[1].Default = false
	if _, err := Resolve(cat, ""); err == nil || err.(*ResolveError).Reason != ReasonNoDefault {
		t.Errorf("no default: %v", err)
	}
}

func TestSupportAt(t *testing.T) {
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	at := func(days int) *time.Time { t := now.AddDate(0, 0, days); return &t }
	for _, tc := range []struct {
		sundown   *time.Time
		supported bool
		reason    string
	}{
		{nil, true, ReasonSupported},
		{at(200), true, ReasonSupported},
		{at(30), true, ReasonNearingSundown},
		{at(-1), false, ReasonPastSundown},
	} {
		s := SupportAt(Release{Version: "15", Sundown: tc.sundown}, now, 90)
		if s.Supported != tc.supported || s.Reason != tc.reason {
			t.Errorf("sundown %v: %+v", tc.sundown, s)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"17", "17.2", 0}, {"15.8", "17", -1}, {"17.10", "17.9", 1}, {"4.0.5", "3.10.8", 1}, {"3.10", "3.10", 0}, {"16beta1", "16beta2", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func upgradeCatalog() *v1alpha1.VersionCatalog {
	day := func(y int, m time.Month, d int) *metav1.Time {
		t := metav1.NewTime(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
		return &t
	}
	return &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: "postgres"}, Spec: v1alpha1.VersionCatalogSpec{Versions: []v1alpha1.CatalogVersion{
		{Version: "13", Image: "pg:13", Sundown: day(2025, 11, 13), Upgrades: []v1alpha1.UpgradePath{{To: "15", Method: v1alpha1.UpgradeBlueGreen}}},
		{Version: "15", Image: "pg:15", Sundown: day(2027, 11, 11), Upgrades: []v1alpha1.UpgradePath{
			{To: "15.1", Method: v1alpha1.UpgradeInPlace}, {To: "17", Method: v1alpha1.UpgradeBlueGreen, Note: "pg_upgrade needs both binaries"}}},
		{Version: "15.1", Image: "pg:15.1"},
		{Version: "17", Image: "pg:17", Default: true},
		{Version: "18", Image: "pg:18", Sunrise: day(2027, 1, 1)},
	}}}
}

func TestCheckNew(t *testing.T) {
	cat := upgradeCatalog()
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ version, reason, message string }{
		{"", "", ""},
		{"15", "", ""},
		{"13", ReasonNotOffered, "version 13 reached its sundown on 2025-11-13: new instances cannot use it; versions offered now: 15, 15.1, 17"},
		{"18", ReasonNotOffered, "version 18 is offered from 2027-01-01: new instances cannot use it; versions offered now: 15, 15.1, 17"},
		{"16", ReasonUnknownVersion, `version "16" is not in the postgres VersionCatalog; supported versions: 13, 15, 15.1, 17, 18`},
	} {
		_, err := CheckNew(cat, tc.version, now)
		checkRefusal(t, "CheckNew("+tc.version+")", err, tc.reason, tc.message)
	}
	// A day later than the sundown instant the version is still refused; the instant before, offered.
	if _, err := CheckNew(cat, "15", time.Date(2027, 11, 10, 23, 59, 59, 0, time.UTC)); err != nil {
		t.Errorf("the second before sundown: %v", err)
	}
	if _, err := CheckNew(cat, "15", time.Date(2027, 11, 11, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Error("at sundown a new instance on 15 was accepted")
	}
}

func TestCheckChange(t *testing.T) {
	cat := upgradeCatalog()
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ from, to, reason, message string }{
		{"15", "15", "", ""},
		{"15", "15.1", "", ""},
		{"17", "", "", ""}, // empty resolves to the default, which is the current version
		{"17", "15", ReasonDowngrade, "17 -> 15 is a downgrade, which no engine supports in place; 17 may move in place to: none"},
		{"15.1", "15", ReasonDowngrade, "15.1 -> 15 is a downgrade, which no engine supports in place; 15.1 may move in place to: none"},
		{"15", "18", ReasonNoUpgradePath, "the postgres VersionCatalog has no upgrade path 15 -> 18; 15 may move in place to: 15.1; blue/green (restore into a new instance) to: 17"},
		{"15", "17", ReasonBlueGreenOnly, `15 -> 17 cannot be done in place (pg_upgrade needs both binaries). Move blue/green: back up this instance, create a Restore with target.newInstance {name: <new instance>, version: "17"} from that backup, move clients to the new instance, then delete this one (docs/upgrades.md)`},
		{"15", "16", ReasonUnknownVersion, `version "16" is not in the postgres VersionCatalog; supported versions: 13, 15, 15.1, 17, 18`},
	} {
		_, err := CheckChange(cat, tc.from, tc.to, now)
		checkRefusal(t, "CheckChange("+tc.from+" -> "+tc.to+")", err, tc.reason, tc.message)
	}
	// An in-place path into a version past its sundown is refused.
	cat.Spec.Versions[1].Upgrades = append(cat.Spec.Versions[1].Upgrades, v1alpha1.UpgradePath{To: "13"})
	cat.Spec.Versions[0].Version = "15.9"
	cat.Spec.Versions[1].Upgrades[2].To = "15.9"
	_, err := CheckChange(cat, "15", "15.9", now)
	checkRefusal(t, "into a sundown version", err, ReasonTargetSundowned,
		"version 15.9 reached its sundown on 2025-11-13; 15 may move in place to: 15.1, 15.9; blue/green (restore into a new instance) to: 17")
}

func checkRefusal(t *testing.T, what string, err error, reason, message string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	re, ok := err.(*ResolveError)
	if !ok || re.Reason != reason || re.Message != message {
		t.Errorf("%s:\n got %v\nwant %s: %s", what, err, reason, message)
	}
}

// NextSupportChange must name the moment SupportAt's answer changes: just before it, the answer is
// the current one; at it, another.
func TestNextSupportChange(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)
	for _, days := range []float64{200, 90.5, 90, 30.25, 0.5} {
		sundown := now.Add(time.Duration(days * 24 * float64(time.Hour)))
		rel := Release{Version: "15", Sundown: &sundown}
		d := NextSupportChange(rel, now, 90)
		if d <= 0 {
			t.Fatalf("%v days before sundown: no next change", days)
		}
		before, at := SupportAt(rel, now.Add(d-2*time.Second), 90), SupportAt(rel, now.Add(d), 90)
		if cur := SupportAt(rel, now, 90); before != cur || at == cur {
			t.Errorf("%v days before sundown, next change in %v: now %q, before it %q, at it %q", days, d, cur.Message, before.Message, at.Message)
		}
	}
	past := now.Add(-time.Hour)
	if d := NextSupportChange(Release{Sundown: &past}, now, 90); d != 0 {
		t.Errorf("past sundown: next change in %v, want none", d)
	}
	if d := NextSupportChange(Release{}, now, 90); d != 0 {
		t.Errorf("no sundown: next change in %v, want none", d)
	}
}

func TestCheckBlueGreen(t *testing.T) {
	cat := upgradeCatalog()
	for _, tc := range []struct{ from, to, message string }{
		{"15", "15", ""},
		{"15", "17", ""},   // blue/green path
		{"15", "15.1", ""}, // in-place path, also fine through a restore
		{"15", "18", "the postgres VersionCatalog has no upgrade path 15 -> 18; 15 may move in place to: 15.1; blue/green (restore into a new instance) to: 17"},
		{"17", "15", "the postgres VersionCatalog has no upgrade path 17 -> 15; 17 may move in place to: none"},
	} {
		err := CheckBlueGreen(cat, tc.from, tc.to)
		reason := ""
		if tc.message != "" {
			reason = ReasonNoUpgradePath
		}
		checkRefusal(t, "CheckBlueGreen("+tc.from+" -> "+tc.to+")", err, reason, tc.message)
	}
}
