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
