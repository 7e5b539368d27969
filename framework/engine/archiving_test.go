package engine_test

import (
	"testing"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
)

// Continuous archiving is refused, at admission and in the reconcile (both run ValidateSpec), on
// an engine that has none, rather than accepted and ignored.
func TestContinuousArchivingOnlyWhereTheEngineHasIt(t *testing.T) {
	e := fakeengine.New()
	if _, ok := any(e).(engine.ContinuousArchiver); ok {
		t.Fatal("the fake engine archives: pick an engine that does not")
	}
	inst := enginetest.Instance(e.Name(), "queue", 1)
	inst.Spec.Backup = &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"},
		Continuous: &v1alpha1.ContinuousArchiving{}}
	enginetest.ExpectErrors(t, engine.ValidateSpec(e, inst, catalog.Release{Version: "1"}),
		"spec.backup.continuous: Forbidden: the fake engine has no continuous archiving")
	inst.Spec.Backup.Continuous = nil
	enginetest.ExpectErrors(t, engine.ValidateSpec(e, inst, catalog.Release{Version: "1"}))
}
