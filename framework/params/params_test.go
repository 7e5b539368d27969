package params

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		ok   []string
		bad  []string
	}{
		{Int(1, 100), []string{"1", "100"}, []string{"0", "101", "x", "1.5"}},
		{Memory(), []string{"128MB", "4GB", "1024kB", "8192"}, []string{"4 GB", "4gb", "-1MB", "MB"}},
		{Float(), []string{"1.1", "4"}, []string{"-1", "x"}},
		{Bool(), []string{"true", "false"}, []string{"yes"}},
		{Enum("on", "off"), []string{"on"}, []string{"ON", ""}},
	} {
		for _, v := range c.ok {
			if msg := c.kind(v); msg != "" {
				t.Errorf("%q rejected: %s", v, msg)
			}
		}
		for _, v := range c.bad {
			if c.kind(v) == "" {
				t.Errorf("%q accepted", v)
			}
		}
	}
}

func TestLinesQuoteValuesInNameOrder(t *testing.T) {
	got := Lines(map[string]string{"work_mem": "4MB", "application_name": "it's"})
	want := "application_name = 'it''s'\nwork_mem = '4MB'\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOwnedParametersNameTheOperator(t *testing.T) {
	s := Spec{Allowed: map[string]Kind{"a": Bool()}, Owned: map[string]string{"port": "probes use it"}}
	errs := s.Validate(map[string]string{"port": "1"}, field.NewPath("spec", "parameters"))
	if len(errs) != 1 || errs[0].Error() != "spec.parameters[port]: Forbidden: port is set by the operator: probes use it" {
		t.Errorf("errs = %v", errs)
	}
}

func TestRestartDigestChangesOnlyWithRestartParameters(t *testing.T) {
	s := Spec{Allowed: map[string]Kind{"max_connections": Int(1, 1000), "work_mem": Memory()}, Restart: []string{"max_connections"}}
	if d := s.RestartDigest(map[string]string{"work_mem": "4MB"}); d != "" {
		t.Errorf("no restart parameter set, digest %q", d)
	}
	a := s.RestartDigest(map[string]string{"max_connections": "100", "work_mem": "4MB"})
	if b := s.RestartDigest(map[string]string{"max_connections": "100", "work_mem": "8MB"}); a == "" || a != b {
		t.Errorf("a reload parameter changed the digest: %q -> %q", a, b)
	}
	if c := s.RestartDigest(map[string]string{"max_connections": "200"}); c == a {
		t.Errorf("a restart parameter left the digest at %q", c)
	}
}
