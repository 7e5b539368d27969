package names

import (
	"strings"
	"testing"
)

func TestChildFitsAndStaysDistinct(t *testing.T) {
	if got := Child("db", "config", MaxDNSLabel); got != "db-config" {
		t.Errorf("short name changed: %q", got)
	}
	long := strings.Repeat("x", 52)
	a, b := Child(long, "replicas-a", MaxDNSLabel), Child(long, "replicas-b", MaxDNSLabel)
	if len(a) > MaxDNSLabel || len(b) > MaxDNSLabel || a == b {
		t.Errorf("long names: %q (%d) %q (%d)", a, len(a), b, len(b))
	}
	if Child(long, "replicas-a", MaxDNSLabel) != a {
		t.Error("not deterministic")
	}
	if got := Fit(strings.Repeat("a", 40)+"-"+strings.Repeat("b", 40), 50); strings.Contains(got, "--") || len(got) > 50 {
		t.Errorf("Fit left a bad name: %q", got)
	}
}

func TestUserStemIsDeterministicDistinctAndShort(t *testing.T) {
	long := strings.Repeat("a-very-long-binding-name.", 10)
	a, b := UserStem("apps", "orders"), UserStem("other", "orders")
	if a != UserStem("apps", "orders") || a == b {
		t.Fatalf("stems %q and %q: want the same for the same binding and distinct across namespaces", a, b)
	}
	for _, s := range []string{a, UserStem("apps", long)} {
		if len(s) > 50 || !strings.HasPrefix(s, UserPrefix) || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("stem %q: want at most 50 lowercase letters, digits and underscores", s)
		}
	}
	if got := UserName(a, 12); got != a+"_12" || !IsUserOf(a, got) {
		t.Errorf("UserName %q", got)
	}
	for _, other := range []string{a, a + "_", a + "_1_0", a + "_01", a + "_-1", a + "x_0", UserName(b, 0)} {
		if IsUserOf(a, other) {
			t.Errorf("%q counts as a user of %q", other, a)
		}
	}
}
