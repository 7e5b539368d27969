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
	inst.Spec.Parameters = map[string]string{"data_directory": "/tmp", "max_connections": "many", "mode": "c"}
	errs := fakeengine.New().Validate(inst, catalog.Release{})
	if len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", errs)
	}
	want := []string{
		`spec.parameters[data_directory]: Unsupported value: "data_directory": supported values: "extra", "max_connections", "mode"`,
		`spec.parameters[max_connections]: Invalid value: "many": must be an integer`,
		`spec.parameters[mode]: Unsupported value: "c": supported values: "a", "b"`,
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, e.Error(), want[i])
		}
	}
}
