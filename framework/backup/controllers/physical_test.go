package controllers

import (
	"context"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/engine/fakeengine"
)

// physicalFake stands in for an engine with base backups (postgres, which framework/ may not
// import): only whether it has them matters here.
type physicalFake struct{ fakeengine.Engine }

func (physicalFake) Superseded(string, string) bool                      { return false }
func (physicalFake) BackupEnv(*v1alpha1.ServiceInstance) []corev1.EnvVar { return nil }
func (physicalFake) Reach(context.Context, engine.BackupTarget) error    { return nil }
func (physicalFake) Dump(context.Context, engine.BackupTarget, io.Writer) error {
	return nil
}
func (physicalFake) Load(context.Context, engine.BackupTarget, io.Reader) (string, error) {
	return "", nil
}
func (physicalFake) BaseBackup(context.Context, engine.BackupTarget, io.Writer) (fwagent.BaseBackupInfo, error) {
	return fwagent.BaseBackupInfo{}, nil
}

// A physical backup is refused, before any Job, by an engine without base backups, for an
// instance that does not archive its log, and to another store than its archive's, each saying
// what to do instead.
func TestPhysicalBackupsNeedAnArchivingInstance(t *testing.T) {
	inst := enginetest.Instance("fake", "orders", 1)
	if reason, msg := physicalRefused(fakeengine.New(), inst, "minio"); reason != ReasonNotSupported || !strings.Contains(msg, "use method Logical") {
		t.Fatalf("an engine without base backups: %s %s", reason, msg)
	}
	if reason, msg := physicalRefused(physicalFake{}, inst, "minio"); reason != ReasonNotArchiving || !strings.Contains(msg, "set its spec.backup.continuous") {
		t.Fatalf("an instance that does not archive: %s %s", reason, msg)
	}
	inst.Spec.Backup = &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}, Continuous: &v1alpha1.ContinuousArchiving{}}
	if reason, msg := physicalRefused(physicalFake{}, inst, "minio"); reason != "" {
		t.Fatalf("an archiving instance: %s %s", reason, msg)
	}
	if reason, msg := physicalRefused(physicalFake{}, inst, "elsewhere"); reason != ReasonNotArchiving || !strings.Contains(msg, `a physical backup goes there too, not to "elsewhere"`) {
		t.Fatalf("a physical backup to another store than the archive's: %s %s", reason, msg)
	}
}
