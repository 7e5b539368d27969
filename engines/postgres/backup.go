package postgres

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

var _ engine.Backuper = Engine{}

// The backup Job reaches the agents with their own certificate, which its environment carries
// from the instance's agent Secret (certs.AgentSecretName).
const (
	envAgentCert = "DATAFLEET_AGENT_TLS_CRT"
	envAgentKey  = "DATAFLEET_AGENT_TLS_KEY"
	envAgentCA   = "DATAFLEET_AGENT_TLS_CA"
)

// BackupEnv implements engine.Backuper.
func (Engine) BackupEnv(inst *v1alpha1.ServiceInstance) []corev1.EnvVar {
	secret := certs.AgentSecretName(inst.Name)
	return []corev1.EnvVar{workload.SecretEnv(envAgentCert, secret, certs.CertKey),
		workload.SecretEnv(envAgentKey, secret, certs.KeyKey), workload.SecretEnv(envAgentCA, secret, certs.CAKey)}
}

// Reach implements engine.Backuper: a member's agent reports it the ready primary (a base
// backup may come from a replica, but a Job waits for an instance with a primary all the same).
func (Engine) Reach(ctx context.Context, t engine.BackupTarget) error {
	_, err := memberAgent(ctx, t, RolePrimary)
	return err
}

// Dump implements engine.Backuper: the primary's agent runs pg_dumpall and pg_dump next to the
// data and streams the archive.
func (Engine) Dump(ctx context.Context, t engine.BackupTarget, w io.Writer) error {
	agent, err := memberAgent(ctx, t, RolePrimary)
	if err != nil {
		return err
	}
	return agent.Dump(ctx, w)
}

// Load implements engine.Backuper through the primary's agent (see the agent's Load).
func (Engine) Load(ctx context.Context, t engine.BackupTarget, r io.Reader) (string, error) {
	agent, err := memberAgent(ctx, t, RolePrimary)
	if err != nil {
		return "", err
	}
	return agent.Load(ctx, r)
}

var _ engine.PhysicalBackuper = Engine{}

// BaseBackup implements engine.PhysicalBackuper: a ready replica's agent takes it when there is
// one, which spares the primary reading every data file; else the primary's.
func (Engine) BaseBackup(ctx context.Context, t engine.BackupTarget, w io.Writer) (fwagent.BaseBackupInfo, error) {
	agent, err := memberAgent(ctx, t, RoleReplica, RolePrimary)
	if err != nil {
		return fwagent.BaseBackupInfo{}, err
	}
	return agent.BaseBackup(ctx, w)
}

// memberAgent finds a member whose agent reports it ready in the first of roles that any member
// has, by asking each one: the Job runs without API access, and the roles may have moved since
// the Job was made.
func memberAgent(ctx context.Context, t engine.BackupTarget, roles ...string) (fwagent.Conn, error) {
	cfg, err := fwagent.ClientTLSFromPEM([]byte(t.Getenv(envAgentCert)), []byte(t.Getenv(envAgentKey)), []byte(t.Getenv(envAgentCA)))
	if err != nil {
		return fwagent.Conn{}, fmt.Errorf("the Job's agent certificate: %w", err)
	}
	agents := fwagent.NewDialer(cfg)
	ready := map[string]fwagent.Conn{}
	var seen []string
	for i := 0; i < int(t.Instance.DesiredReplicas()); i++ {
		agent := agents.At(fwagent.Address(workload.MemberHost(t.Instance, i)))
		st, err := agent.Status(ctx)
		switch {
		case err != nil:
			seen = append(seen, err.Error())
		case st.Ready && slices.Contains(roles, st.Role):
			if _, found := ready[st.Role]; !found {
				ready[st.Role] = agent
			}
		default:
			seen = append(seen, fmt.Sprintf("%s: %s %s", agent.Addr, st.Role, st.Detail))
		}
	}
	for _, role := range roles {
		if agent, ok := ready[role]; ok {
			return agent, nil
		}
	}
	return fwagent.Conn{}, fmt.Errorf("no member is a ready %s (%s)", strings.Join(roles, " or "), strings.Join(seen, "; "))
}
