package engine

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Backuper is implemented by engines whose instances can be backed up and restored. Dump and Load
// do not run in the operator: they run in the backup Job (the operator's image, in the instance's
// namespace), which streams between them and the store. They reach the instance over the pod
// network with the credentials BackupEnv puts in the Job's environment.
type Backuper interface {
	// BackupEnv is the environment Dump and Load need, as references to the instance's Secrets.
	BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar
	// Dump writes a complete logical dump of the instance to w (a framework/backup/archive), and
	// returns nil only if it is complete.
	Dump(ctx context.Context, t BackupTarget, w io.Writer) error
	// Load applies a dump to the instance. It must leave the instance's data as it was unless the
	// whole dump was read and applied, and check what it applied against what the dump recorded.
	// It returns a one-line summary of what it verified, for the Restore's status.
	Load(ctx context.Context, t BackupTarget, r io.Reader) (string, error)
	// Reach returns nil once the instance answers the Job as Dump and Load will ask it (the
	// member they use is there and takes the Job's credentials). The Job calls it until it does,
	// before either touches anything: a new pod may start before the network plugin lets it
	// through the instance's NetworkPolicy, and an instance may be between primaries.
	Reach(ctx context.Context, t BackupTarget) error
}

// PhysicalBackuper is implemented by Backupers that also take physical backups (Backup
// spec.method Physical) of instances that archive continuously (ContinuousArchiver): a copy of
// the data files, from a replica when one is ready, onto which a restore replays the archive.
type PhysicalBackuper interface {
	Backuper
	ContinuousArchiver
	// BaseBackup writes the copy to w and says where in the archived log its restore starts.
	BaseBackup(ctx context.Context, t BackupTarget, w io.Writer) (fwagent.BaseBackupInfo, error)
}

// BackupTarget is the instance a backup Job works on.
type BackupTarget struct {
	Instance *v1alpha1.ServiceInstance
	// Getenv reads the Job's environment (BackupEnv).
	Getenv func(string) string
}
