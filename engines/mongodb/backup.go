package mongodb

import (
	"context"
	"io"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.Backuper = Engine{}

// envPassword carries the administrator's password into the backup Job.
const envPassword = "DATAFLEET_MONGODB_PASSWORD"

// defaultTimeout bounds finding and connecting to a server.
const defaultTimeout = 10 * time.Second

// BackupEnv implements engine.Backuper.
func (Engine) BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar {
	return []corev1.EnvVar{workload.SecretEnv(envPassword, SecretName(inst), mongoagent.PasswordKey)}
}

// primaryAddress is the client Service, which selects the primary.
func primaryAddress(inst *v1alpha1.ServiceInstance) string {
	return net.JoinHostPort(names.ServiceHost(workload.ServiceName(inst), inst.Namespace), strconv.Itoa(mongoagent.Port))
}

// Reach implements engine.Backuper: the primary takes the administrator's credentials.
func (Engine) Reach(ctx context.Context, t engine.BackupTarget) error {
	return withAdmin(ctx, primaryAddress(t.Instance), t.Getenv(envPassword), func(*Server) error { return nil })
}

// Dump implements engine.Backuper: the Job reads the primary through the driver (see Dump).
func (Engine) Dump(ctx context.Context, t engine.BackupTarget, w io.Writer) error {
	return withAdmin(ctx, primaryAddress(t.Instance), t.Getenv(envPassword), func(s *Server) error {
		return Dump(ctx, s.Client, w)
	})
}

// Load implements engine.Backuper (see Load).
func (Engine) Load(ctx context.Context, t engine.BackupTarget, r io.Reader) (string, error) {
	var summary string
	err := withAdmin(ctx, primaryAddress(t.Instance), t.Getenv(envPassword), func(s *Server) error {
		var err error
		summary, err = Load(ctx, s.Client, r)
		return err
	})
	return summary, err
}
