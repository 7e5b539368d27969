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
