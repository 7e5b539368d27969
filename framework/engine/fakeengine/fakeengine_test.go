package fakeengine_test

import (
	"testing"

	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
)

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{Engine: fakeengine.New()})
}

func TestGolden(t *testing.T) {
	inst := enginetest.Instance(fakeengine.Name, "demo", 3)
	inst.Spec.Parameters = map[string]string{"max_connections": "100", "mode": "a"}
	enginetest.Golden(t, fakeengine.New(), engine.RenderInput{Instance: inst, Release: catalog.Release{Version: "1", Image: "fake:1"}},
		"testdata/demo.golden.yaml")
}

func TestValidateRejectsUnknownAndMistypedParameters(t *testing.T) {
	inst := enginetest.Instance(fakeengine.Name, "demo", 1)
	inst.Spec.Parameters = map[string]string{"data_directory": "/tmp", "max_connections": "many", "mode": "c", "port": "1"}
	errs := fakeengine.New().Validate(inst, catalog.Release{})
	want := []string{
		`spec.parameters[data_directory]: Unsupported value: "data_directory": supported values: "extra", "max_connections", "mode"`,
		`spec.parameters[max_connections]: Invalid value: "many": must be an integer`,
		`spec.parameters[mode]: Invalid value: "c": must be one of: a, b`,
		`spec.parameters[port]: Forbidden: port is set by the operator: clients and probes depend on it`,
	}
	if len(errs) != len(want) {
		t.Fatalf("want %d errors, got %v", len(want), errs)
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, e.Error(), want[i])
		}
	}
}
