package postgres

import (
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.Backuper = Engine{}

// envToken carries the agents' action token (the replication password) into the backup Job.
const envToken = "DATAFLEET_POSTGRES_TOKEN"

// BackupEnv implements engine.Backuper.
func (Engine) BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar {
	return []corev1.EnvVar{workload.SecretEnv(envToken, ReplicationSecretName(inst), passwordKey)}
}

// Dump implements engine.Backuper: the primary's agent runs pg_dumpall and pg_dump next to the
// data and streams the archive.
func (Engine) Dump(ctx context.Context, t engine.BackupTarget, w io.Writer) error {
	addr, err := primaryAgent(ctx, t.Instance)
	if err != nil {
		return err
	}
	return fwagent.Dump(ctx, addr, t.Getenv(envToken), w)
}

// Load implements engine.Backuper through the primary's agent (see the agent's Load).
func (Engine) Load(ctx context.Context, t engine.BackupTarget, r io.Reader) (string, error) {
	addr, err := primaryAgent(ctx, t.Instance)
	if err != nil {
		return "", err
	}
	return fwagent.Load(ctx, addr, t.Getenv(envToken), r)
}

// primaryAgent finds the member whose agent reports a ready primary, by asking each one: the Job
// runs without API access, and the primary may have moved since the Job was made.
func primaryAgent(ctx context.Context, inst *v1alpha1.ServiceInstance) (string, error) {
	var seen []string
	for i := 0; i < int(inst.DesiredReplicas()); i++ {
		addr := fwagent.Address(workload.MemberHost(inst, i))
		st, err := fwagent.StatusAt(ctx, addr)
		switch {
		case err != nil:
			seen = append(seen, err.Error())
		case st.Role == RolePrimary && st.Ready:
			return addr, nil
		default:
			seen = append(seen, fmt.Sprintf("%s: %s %s", addr, st.Role, st.Detail))
		}
	}
	return "", fmt.Errorf("no member is a ready primary (%s)", strings.Join(seen, "; "))
}
