package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// ReplicationUser streams WAL to replicas and serves pg_rewind. Its password comes from the
// instance's replication Secret.
const ReplicationUser = "datafleet_replication"

// claim returns the lease's holder (renewing it when it is this member); a standalone agent is
// always its own primary.
func (e *Engine) claim(ctx context.Context) (string, error) {
	if e.Config.Lease == nil {
		return e.Config.Name, nil
	}
	return e.Config.Lease.Claim(ctx)
}

func (e *Engine) passFile() string { return filepath.Join(e.Config.SocketDir, ".pgpass") }

// writePassFile gives libpq (walreceiver, pg_basebackup, pg_rewind) the replication password
// without putting it on a command line or in a configuration file.
func (e *Engine) writePassFile() error {
	if e.Config.ReplicationPasswordFile == "" {
		return nil
	}
	pw, err := e.replicationPassword()
	if err != nil {
		return err
	}
	escaped := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pw)
	return e.writeFile(e.passFile(), []byte("*:*:*:"+ReplicationUser+":"+escaped+"\n"))
}

func (e *Engine) replicationPassword() (string, error) {
	b, err := os.ReadFile(e.Config.ReplicationPasswordFile)
	if err != nil {
		return "", fmt.Errorf("reading the replication password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CloneSuffix ends the application_name a member clones the primary under.
const CloneSuffix = "_clone"

// SynchronousStandbyNames is the synchronous_standby_names setting under which any n of the
// members (a replica's application_name is its member name, the pod's) confirm each commit. The
// members are named, not "*", which would count any walsender: a clone in progress, or any client
// holding the replication password.
func SynchronousStandbyNames(n int, members []string) string {
	quoted := make([]string, len(members))
	for i, m := range members {
		quoted[i] = `"` + strings.ReplaceAll(m, `"`, `""`) + `"`
	}
	return fmt.Sprintf("ANY %d (%s)", n, strings.Join(quoted, ", "))
}

// sourceConnString reaches the current primary as the replication user.
// With TLS required it verifies the primary's certificate against the instance's CA and the
// Service name in Source, so a replica streams from nothing that only claims to be the primary.
func (e *Engine) sourceConnString() string {
	conn := fmt.Sprintf("%s user=%s passfile=%s application_name=%s dbname=postgres connect_timeout=5 target_session_attrs=read-write",
		e.Config.Source, ReplicationUser, e.passFile(), e.Config.Name)
	if e.Config.TLSRequired {
		conn += " sslmode=verify-full sslrootcert=" + filepath.Join(e.Config.TLSDir, tlsCAFile)
	}
	return conn
}

// agentSettings are the settings the agent owns, included after the instance's parameters.
func (e *Engine) agentSettings() (string, error) {
	lines := []string{
		"# Written by the Datafleet agent on every start; changes here are lost.",
		"wal_level = 'replica'",
		"hot_standby = 'on'",
		// A replica that was down for a while catches up from the primary's WAL without a re-clone.
		"wal_keep_size = '512MB'",
		// Replicas notice a dead primary and reconnect to a new one within seconds.
		"wal_receiver_timeout = '10s'",
		"wal_sender_timeout = '10s'",
		"wal_retrieve_retry_interval = '1s'",
		"recovery_target_timeline = 'latest'",
	}
	lines = append(lines, e.tlsSettings()...)
	if e.Config.Source != "" {
		lines = append(lines, "primary_conninfo = "+quoteSetting(e.sourceConnString()))
	}
	archiving, err := e.archiveSettings()
	if err != nil {
		return "", err
	}
	lines = append(lines, archiving...)
	return strings.Join(lines, "\n") + "\n", nil
}

// quoteSetting quotes a value for postgresql.conf.
func quoteSetting(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// setStandby creates or removes standby.signal, which makes postgres start as a replica.
func (e *Engine) setStandby(standby bool) error {
	path := filepath.Join(e.Config.DataDir, standbySignal)
	if standby {
		return e.writeFile(path, nil)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// connectSource connects to the current primary as the replication user.
func (e *Engine) connectSource(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(e.sourceConnString())
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// waitForSource waits until the primary accepts the replication user, for at most timeout.
func (e *Engine) waitForSource(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		conn, err := e.connectSource(ctx)
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("no primary answered at %q: %w", e.Config.Source, last)
		case <-time.After(time.Second):
		}
	}
}

// clone copies the primary's data with pg_basebackup into a scratch directory that is renamed
// into place only when complete, so a clone interrupted by a restart is never mistaken for data.
func (e *Engine) clone(ctx context.Context) error {
	if e.Config.Source == "" {
		return errors.New("this member is not the primary and has no primary to clone from")
	}
	log.FromContext(ctx).Info("cloning the primary", "source", e.Config.Source)
	if err := e.waitForSource(ctx, 10*time.Minute); err != nil {
		return err
	}
	scratch := e.Config.DataDir + ".clone"
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	// The clone's walsender goes under another application_name than the member's: it is not the
	// standby synchronous_standby_names names, and must never confirm a commit.
	out, err := e.command(ctx, "pg_basebackup", "--pgdata", scratch, "--dbname", e.sourceConnString()+" application_name="+e.Config.Name+CloneSuffix,
		"--wal-method", "stream", "--checkpoint", "fast", "--no-password").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	return os.Rename(scratch, e.Config.DataDir)
}

// rejoin brings an existing data directory in line with the current primary before it starts as
// a replica. pg_rewind undoes writes the new primary never saw (a former primary's last
// transactions under asynchronous replication) and is a no-op otherwise. When no primary answers
// (none elected yet), the member starts as a replica anyway so that it can be elected.
func (e *Engine) rejoin(ctx context.Context, holder string, wasPrimary bool) error {
	if e.Config.Source == "" {
		return nil
	}
	wait := 3 * time.Second
	if wasPrimary && holder != "" {
		// Another member was elected: following it without a rewind could fail forever.
		wait = 2 * time.Minute
	}
	if err := e.waitForSource(ctx, wait); err != nil {
		if wasPrimary && holder != "" {
			return err
		}
		log.FromContext(ctx).Info("no primary to rewind against; starting as a replica", "reason", err.Error())
		return nil
	}
	if err := e.checkpointSource(ctx); err != nil {
		// Only a primary promoted moments ago needs it (and its agent requests one itself).
		log.FromContext(ctx).Info("could not ask the primary for a checkpoint before pg_rewind", "reason", err.Error())
	}
	out, err := e.command(ctx, "pg_rewind", "--target-pgdata", e.Config.DataDir,
		"--source-server", e.sourceConnString(), "--progress").CombinedOutput()
	if err != nil {
		return e.reclone(ctx, fmt.Sprintf("pg_rewind: %v: %s", err, strings.TrimSpace(string(out))))
	}
	log.FromContext(ctx).Info("rejoined the primary", "pg_rewind", strings.TrimSpace(string(out)))
	return nil
}

// checkpointSource asks the primary for a checkpoint. pg_rewind learns the source's timeline
// from its control file, which a just-promoted primary updates only at its first checkpoint after
// the promotion: rewinding before that compares histories against the old timeline and can leave
// a standby that cannot start ("requested timeline does not contain minimum recovery point").
func (e *Engine) checkpointSource(ctx context.Context) error {
	conn, err := e.connectSource(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// divergedSuffix names where data that could not follow the primary is kept.
const divergedSuffix = ".diverged"

// reclone replaces data that cannot follow the primary (pg_rewind failed: the histories diverged
// beyond what the WAL on either side can undo, or a rewind was interrupted, which leaves the
// directory unusable) with a fresh clone. The old directory is kept beside it, not deleted: it may
// hold the only copy of writes the new primary never received, for a human to look at.
func (e *Engine) reclone(ctx context.Context, why string) error {
	aside := e.Config.DataDir + divergedSuffix
	log.FromContext(ctx).Info("the data cannot follow the primary: keeping it aside and cloning the primary",
		"reason", why, "keptAt", aside)
	if err := os.RemoveAll(aside); err != nil {
		return err
	}
	if err := os.Rename(e.Config.DataDir, aside); err != nil {
		return err
	}
	return e.clone(ctx)
}

// Control runs the primary lease (see package primary); a standalone agent just waits. Either way
// the primary keeps the roles the agent relies on.
func (e *Engine) Control(ctx context.Context) error {
	go e.ensureMonitor(ctx)
	go e.dropBeforeRestore(ctx)
	if e.Config.Lease == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	go e.ensureReplicationUser(ctx)
	go e.recoverSwapsOnPrimary(ctx)
	return e.Config.Lease.Keep(ctx, e)
}

// ImmediateStopSignal is PostgreSQL's immediate shutdown: every connection is dropped at once.
func (e *Engine) ImmediateStopSignal() os.Signal { return syscall.SIGQUIT }

// AfterStop hands the lease back once postgres has stopped, so that a replica is elected without
// waiting for the lease to expire.
func (e *Engine) AfterStop(ctx context.Context) {
	if e.Config.Lease == nil {
		return
	}
	if err := e.Config.Lease.Release(ctx); err != nil {
		log.FromContext(ctx).Error(err, "releasing the primary lease")
	}
}

// IsPrimary implements primary.Member.
func (e *Engine) IsPrimary(ctx context.Context) (bool, error) {
	var inRecovery bool
	err := e.queryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()", &inRecovery)
	return err == nil && !inRecovery, err
}

// Promote implements primary.Member.
func (e *Engine) Promote(ctx context.Context) error {
	var ok bool
	if err := e.queryRow(ctx, "SELECT pg_catalog.pg_promote(true, 60)", &ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("pg_promote did not finish within 60 s")
	}
	// Record the new timeline in the control file soon, for members that rewind against this one
	// (see checkpointSource), and archive what the old primary may not have (archive_ancestors.go).
	// Not waited for: the keeper must go back to renewing the lease.
	logger := log.FromContext(ctx)
	go e.archiveAncestorsAfterPromotion(logger)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := e.exec(ctx, "CHECKPOINT"); err != nil {
			logger.Error(err, "checkpoint after promotion")
		}
	}()
	return nil
}

// Ask implements primary.Peers: the agent at ip answers through its Keeper.Confirm; the members
// reach each other with the agents' certificate.
func (e *Engine) Ask(ctx context.Context, ip, holder string) error {
	return e.Config.Peers.At(fwagent.Address(ip)).Act(ctx, primary.ActionConfirm, url.Values{primary.ParamHolder: {holder}})
}

// Follow implements primary.Member: it stops the WAL receiver, which postgres restarts within
// wal_retrieve_retry_interval against primary_conninfo, when the primary changed (so the replica
// stops waiting on a connection to the old one), or when the same receiver has not been streaming
// for stalledAfter. The receiver ignores connect_timeout while it connects: to a frozen former
// primary (whose kernel still accepts the connection) through a Service not yet moved, it waited
// 80 s in the chaos step, and under synchronous replication the new primary could commit nothing
// meanwhile. A stalled replica whose data diverged from the primary's (see divergence.go) is
// stopped instead, so that it is rewound before it starts again.
func (e *Engine) Follow(ctx context.Context, changed bool) error {
	var pid int
	var status string
	err := e.queryRow(ctx, walReceiver, &pid, &status)
	if err != nil || pid == 0 {
		return err
	}
	e.followMu.Lock()
	defer e.followMu.Unlock()
	now := time.Now()
	switch {
	case status == "streaming":
		e.stalledPID = 0
	case pid != e.stalledPID: // first seen not streaming
		e.stalledPID, e.stalledSince = pid, now
	case now.Sub(e.stalledSince) >= stalledAfter:
		// A receiver that cannot stream may be refused by this member's own startup process.
		why, err := e.divergence(ctx)
		if err != nil {
			log.FromContext(ctx).Info("could not compare this member's timeline with the primary's", "reason", err.Error())
		}
		if why != "" {
			return &primary.Stop{Reason: why + ": stopping to rewind this member before it starts again"}
		}
		log.FromContext(ctx).Info("restarting the WAL receiver", "status", status, "for", now.Sub(e.stalledSince).Round(time.Second))
		return syscall.Kill(pid, syscall.SIGTERM)
	}
	if changed {
		return syscall.Kill(pid, syscall.SIGTERM)
	}
	return nil
}

// walReceiver selects the WAL receiver's pid and status. pg_stat_wal_receiver shows no row until
// the receiver has connected, pg_stat_activity does.
const walReceiver = "SELECT coalesce((SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walreceiver' LIMIT 1), 0), " +
	"coalesce((SELECT status FROM pg_catalog.pg_stat_wal_receiver), '')"

// stalledAfter is how long a WAL receiver may go without streaming before Follow restarts it.
const stalledAfter = 5 * time.Second

// ensureReplicationUser creates the replication user on the primary (and sets its password from
// the Secret), retrying until it succeeds. Replicas get it through replication.
func (e *Engine) ensureReplicationUser(ctx context.Context) {
	if e.Config.ReplicationPasswordFile == "" {
		return
	}
	onPrimary(ctx, "creating the replication user", e.createReplicationUser)
}

// onPrimary runs f until it succeeds or ctx ends, every 2 s; f returns errNotPrimary while this
// member is a replica, which is not logged.
func onPrimary(ctx context.Context, what string, f func(context.Context) error) {
	for {
		err := f(ctx)
		if err == nil {
			return
		}
		if !errors.Is(err, errNotPrimary) {
			log.FromContext(ctx).Error(err, what)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

var errNotPrimary = errors.New("not the primary")

func (e *Engine) createReplicationUser(ctx context.Context) error {
	if ok, err := e.IsPrimary(ctx); err != nil || !ok {
		return errors.Join(err, errNotPrimary)
	}
	pw, err := e.replicationPassword()
	if err != nil {
		return err
	}
	verifier, err := scramVerifier(pw)
	if err != nil {
		return err
	}
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The password goes over the wire only as a SCRAM verifier, and the verifier stays out of
	// the server's log (unlogged, first).
	stmts := []string{
		// The first replica needs this user to connect: its creation cannot wait for a replica.
		`SET synchronous_commit = 'local'`,
		`DO $$ BEGIN
		   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + ReplicationUser + `') THEN
		     CREATE ROLE ` + ReplicationUser + ` WITH LOGIN REPLICATION;
		   END IF;
		 END $$`,
		`ALTER ROLE ` + ReplicationUser + ` WITH LOGIN REPLICATION PASSWORD '` + verifier + `'`,
		// What pg_rewind needs on the source, without superuser.
		`GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO ` + ReplicationUser,
		`GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO ` + ReplicationUser,
		`GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO ` + ReplicationUser,
		`GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO ` + ReplicationUser,
		// A rejoining member asks the primary for a checkpoint before pg_rewind (PostgreSQL 15+).
		`GRANT pg_checkpoint TO ` + ReplicationUser,
	}
	for _, s := range slices.Concat(unlogged, stmts) {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Status connects through the Unix socket and reports the role, the WAL position and, on the
// primary, the connected replicas.
func (e *Engine) Status(ctx context.Context) fwagent.Status {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	pos, err := e.position(ctx, conn, inRecovery)
	if err != nil {
		return fwagent.Status{Detail: "reading this member's WAL position: " + err.Error()}
	}
	st := fwagent.Status{Ready: true, Role: "primary", Position: &pos}
	if inRecovery {
		st.Role = "replica"
		return st
	}
	rows, err := conn.Query(ctx, `SELECT application_name, state, sync_state IN ('sync', 'quorum') FROM pg_stat_replication ORDER BY application_name`)
	if err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	st.Replicas, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (fwagent.ReplicaStatus, error) {
		var rs fwagent.ReplicaStatus
		return rs, r.Scan(&rs.Name, &rs.State, &rs.Synchronous)
	})
	if err != nil {
		return fwagent.Status{Detail: err.Error()}
	}
	if e.Config.ArchiveConfig != "" {
		// The archiver's state is no reason to be unready: serving goes on while it retries.
		if a, err := e.archiveState(ctx, conn); err == nil && a != nil {
			st.Archive = &a.ArchiveStatus
		}
	}
	return st
}

func (e *Engine) exec(ctx context.Context, sql string) error {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (e *Engine) queryRow(ctx context.Context, sql string, dest ...any) error {
	conn, err := e.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}
