package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// These tests run three agents with real PostgreSQL on loopback, coordinated through a Lease on a
// real API server (envtest). The test plays the operator's part: it elects and assigns the lease
// with the same functions the operator uses.

type member struct {
	e *Engine
	r *running
}

type replicaSet struct {
	t       *testing.T
	env     *testenv.Env
	key     types.NamespacedName
	members map[string]*member
}

func newReplicaSet(t *testing.T, n int, parameters string) *replicaSet {
	t.Helper()
	env := testenv.Start(t)
	rs := &replicaSet{t: t, env: env, key: types.NamespacedName{Namespace: "default", Name: "pg-primary"}, members: map[string]*member{}}
	if _, err := primary.Ensure(context.Background(), env.Client, rs.key, nil, nil, "pg-0", time.Now()); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("s3cret:with\\odd'chars"), 0o600); err != nil {
		t.Fatal(err)
	}
	configs := make([]Config, n)
	var hosts, ports []string
	for i := range configs {
		configs[i] = newConfig(t)
		hosts = append(hosts, "127.0.0.1")
		ports = append(ports, fmt.Sprint(configs[i].Port))
	}
	for i, c := range configs {
		c.Name = fmt.Sprintf("pg-%d", i)
		// Several hosts and target_session_attrs stand in for the read-write Service of a pod.
		c.Source = fmt.Sprintf("host=%s port=%s", strings.Join(hosts, ","), strings.Join(ports, ","))
		c.ReplicationPasswordFile = pwFile
		c.Lease = &primary.Keeper{Client: env.Client, Key: rs.key, Identity: c.Name}
		if err := os.WriteFile(c.ParametersFile, []byte(parameters), 0o644); err != nil {
			t.Fatal(err)
		}
		rs.members[c.Name] = &member{e: &Engine{Config: c}}
	}
	return rs
}

func (rs *replicaSet) start(name string) {
	rs.t.Helper()
	m := rs.members[name]
	m.e.Config.Lease = &primary.Keeper{Client: rs.env.Client, Key: rs.key, Identity: name}
	m.r = start(rs.t, m.e)
}

func (rs *replicaSet) lease() *coordinationv1.Lease {
	rs.t.Helper()
	l := &coordinationv1.Lease{}
	if err := rs.env.Client.Get(context.Background(), rs.key, l); err != nil {
		rs.t.Fatal(err)
	}
	return l
}

// requestStepDown asks the primary to hand over to successor, as the operator does: read the
// lease and annotate it, again when the holder's renewal changed it in between (a conflict the
// operator's next reconcile would retry).
func (rs *replicaSet) requestStepDown(successor string) {
	rs.t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return primary.RequestStepDown(context.Background(), rs.env.Client, rs.lease(), successor)
	}); err != nil {
		rs.t.Fatal(err)
	}
}

// elect does what the operator does once the lease is vacant: ask every running member for its
// position, elect, assign.
func (rs *replicaSet) elect(preferred string, quorum int) string {
	rs.t.Helper()
	var cands []primary.Candidate
	for name, m := range rs.members {
		if m.r == nil || m.r.ended() {
			continue
		}
		s := m.r.status(rs.t)
		c := primary.Candidate{Name: name, Healthy: s.Ready && s.Role == "replica"}
		if s.Position != nil {
			c.Position = *s.Position
		}
		cands = append(cands, c)
	}
	var winner string
	testenv.Eventually(rs.t, 30*time.Second, func() error {
		l := rs.lease()
		if !primary.Read(l).Vacant(time.Now()) {
			return fmt.Errorf("lease still held by %s", primary.Read(l).Holder)
		}
		w, err := primary.Elect(cands, preferred, quorum)
		if err != nil {
			rs.t.Fatal(err)
		}
		winner = w
		_, err = primary.Assign(context.Background(), rs.env.Client, l, w, time.Now())
		return err
	})
	return winner
}

func (rs *replicaSet) waitRole(name, role string) {
	rs.t.Helper()
	testenv.Eventually(rs.t, time.Minute, func() error {
		if s := rs.members[name].r.status(rs.t); s.Role != role || !s.Ready {
			return fmt.Errorf("%s: %+v, want a ready %s", name, s, role)
		}
		return nil
	})
}

// waitRow waits until a replica has replayed a row.
func (rs *replicaSet) waitRow(name, sql, want string) {
	rs.t.Helper()
	testenv.Eventually(rs.t, time.Minute, func() error {
		conn, err := dbaConnect(context.Background(), rs.members[name].e, "postgres")
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var got string
		if err := conn.QueryRow(context.Background(), sql).Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: %s = %q, want %q", name, sql, got, want)
		}
		return nil
	})
}

// restartedInPlace waits until name's agent has stopped its postgres for a reason containing
// why and started it again itself: the agent does not end (the kubelet would restart the
// container, with its back-off).
func (rs *replicaSet) restartedInPlace(name, why string) {
	rs.t.Helper()
	r := rs.members[name].r
	testenv.Eventually(rs.t, time.Minute, func() error {
		if r.ended() {
			err := <-r.done
			r.done <- err
			rs.t.Fatalf("%s's agent ended (%v): the engine is restarted in place", name, err)
		}
		st, err := r.agent().Status(context.Background())
		if err != nil {
			return err
		}
		if st.Restarts == nil || !strings.Contains(st.Restarts.LastReason, why) {
			return fmt.Errorf("%s's restarts: %+v, want one for %q", name, st.Restarts, why)
		}
		return nil
	})
}

func (r *running) ended() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return true
	default:
		return false
	}
}

func TestReplicasFailoverRejoinAndSwitchover(t *testing.T) {
	rs := newReplicaSet(t, 3, "synchronous_standby_names = '"+SynchronousStandbyNames(1, []string{"pg-0", "pg-1", "pg-2"})+"'\n")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.start("pg-2")
	rs.waitRole("pg-1", "replica")
	rs.waitRole("pg-2", "replica")

	p0 := rs.members["pg-0"]
	testenv.Eventually(t, time.Minute, func() error {
		s := p0.r.status(t)
		if len(s.Replicas) != 2 {
			return fmt.Errorf("primary sees replicas %+v, want pg-1 and pg-2", s.Replicas)
		}
		for _, r := range s.Replicas {
			if r.State != "streaming" || !r.Synchronous {
				return fmt.Errorf("replica %+v, want streaming and synchronous", r)
			}
		}
		return nil
	})
	// Under synchronous replication a committed row is on a replica before the commit returns.
	execSQL(t, p0.e, "CREATE TABLE orders (id int PRIMARY KEY, what text)")
	for i := range 50 {
		execSQL(t, p0.e, fmt.Sprintf("INSERT INTO orders VALUES (%d, 'before failover')", i))
	}

	// Failover: the primary stops (as when its pod is deleted) and hands the lease back.
	p0.r.stop(t)
	if h := primary.Read(rs.lease()).Holder; h != "" {
		t.Fatalf("the stopped primary still holds the lease: %q", h)
	}
	// Two replicas, commits wait for ANY 1: both must answer before one is elected.
	winner := rs.elect("", 2)
	rs.waitRole(winner, "primary")
	w := rs.members[winner]
	if got := query(t, w.e, "SELECT count(*)::text FROM orders"); got != "50" {
		t.Fatalf("rows on the new primary %s: %s, want all 50 committed rows", winner, got)
	}
	// The other replica follows the new primary: a synchronous commit returns only once it has.
	execSQL(t, w.e, "INSERT INTO orders VALUES (100, 'after failover')")
	other := map[string]string{"pg-1": "pg-2", "pg-2": "pg-1"}[winner]
	rs.waitRow(other, "SELECT what FROM orders WHERE id = 100", "after failover")

	// The old primary comes back: it rewinds, follows the new primary and sees its writes.
	rs.start("pg-0")
	rs.waitRole("pg-0", "replica")
	rs.waitRow("pg-0", "SELECT what FROM orders WHERE id = 100", "after failover")

	// Planned switchover back to pg-0: the primary steps down cleanly, pg-0 is elected, and the
	// former primary's agent starts its postgres again as a replica, in the same process.
	rs.requestStepDown("pg-0")
	rs.restartedInPlace(winner, "asked to step down")
	if got := rs.elect("pg-0", 1); got != "pg-0" {
		t.Fatalf("switchover elected %s, want pg-0", got)
	}
	rs.waitRole("pg-0", "primary")
	rs.waitRole(winner, "replica")
	execSQL(t, p0.e, "INSERT INTO orders VALUES (101, 'after switchover')")
	rs.waitRow(winner, "SELECT what FROM orders WHERE id = 101", "after switchover")

	// Fencing: if the lease names another member, the primary stops at once, and starts again
	// as a replica of that member (which promotes itself on finding the lease its own).
	l := rs.lease()
	l.Spec.HolderIdentity = ptr.To("pg-1")
	if err := rs.env.Client.Update(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	rs.restartedInPlace("pg-0", `held by "pg-1"`)
	rs.waitRole("pg-1", "primary")
	rs.waitRole("pg-0", "replica")
	execSQL(t, rs.members["pg-1"].e, "INSERT INTO orders VALUES (102, 'after fencing')")
	rs.waitRow("pg-0", "SELECT what FROM orders WHERE id = 102", "after fencing")
	if r := p0.r.status(t).Restarts; r == nil || r.Count != 1 {
		t.Errorf("pg-0's restarts: %+v, want the fence alone", r)
	}
	if r := w.r.status(t).Restarts; r == nil || r.Count != 1 || !strings.Contains(r.LastReason, "asked to step down") {
		t.Errorf("%s's restarts: %+v, want the step-down alone", winner, r)
	}
}

// A holder that lost its volume must not initdb an empty database in place of the instance's data.
func TestHolderWithoutDataNeverInitialisesABootstrappedInstance(t *testing.T) {
	rs := newReplicaSet(t, 1, "")
	l := rs.lease()
	l.Annotations = map[string]string{primary.BootstrappedAnnotation: "true"}
	if err := rs.env.Client.Update(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	e := rs.members["pg-0"].e
	err := e.Bootstrap(context.Background())
	if err == nil || !strings.Contains(err.Error(), "released the lease") {
		t.Fatalf("Bootstrap = %v, want a refusal that releases the lease", err)
	}
	if _, err := os.Stat(filepath.Join(e.Config.DataDir, "PG_VERSION")); !os.IsNotExist(err) {
		t.Errorf("a data directory was created: %v", err)
	}
	if h := primary.Read(rs.lease()).Holder; h != "" {
		t.Errorf("the lease is still held by %q", h)
	}
}

// Data that pg_rewind cannot bring in line (here another database altogether, as after a volume
// mix-up) is kept aside and replaced by a clone of the primary.
func TestDataThatCannotBeRewoundIsKeptAsideAndRecloned(t *testing.T) {
	rs := newReplicaSet(t, 2, "")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	execSQL(t, rs.members["pg-0"].e, "CREATE TABLE orders (id int PRIMARY KEY, what text)", "INSERT INTO orders VALUES (1, 'from the primary')")

	// pg-1's volume holds a database of its own, made by a standalone agent.
	m := rs.members["pg-1"]
	alone := &Engine{Config: m.e.Config}
	alone.Config.Lease, alone.Config.Source = nil, ""
	r := start(t, alone)
	execSQL(t, alone, "CREATE TABLE stray (what text)", "INSERT INTO stray VALUES ('kept aside')")
	r.stop(t)

	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	rs.waitRow("pg-1", "SELECT what FROM orders WHERE id = 1", "from the primary")
	if _, err := os.Stat(filepath.Join(m.e.Config.DataDir+divergedSuffix, "PG_VERSION")); err != nil {
		t.Errorf("the data that could not be rewound was not kept: %v", err)
	}
}

// A replica whose primary is frozen (its kernel still accepts connections, nothing answers)
// does not wait on it for ever: the WAL receiver ignores connect_timeout while connecting, so
// Follow restarts one that has not streamed for stalledAfter, and the replica tries again (in a
// pod, through a Service that by then leads to the new primary). Before, a receiver hung 80 s on
// a frozen former primary in the chaos step, and the new primary could commit nothing meanwhile.
func TestAReplicaDoesNotHangOnAFrozenPrimary(t *testing.T) {
	rs := newReplicaSet(t, 2, "")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	receiver := func() (int, string) {
		conn, err := dbaConnect(context.Background(), rs.members["pg-1"].e, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var pid int
		var status string
		if err := conn.QueryRow(context.Background(), walReceiver).Scan(&pid, &status); err != nil {
			t.Fatal(err)
		}
		return pid, status
	}
	testenv.Eventually(t, time.Minute, func() error {
		if _, status := receiver(); status != "streaming" {
			return fmt.Errorf("pg-1's WAL receiver is %q", status)
		}
		return nil
	})
	frozen := postgresProcesses(t, rs.members["pg-0"].e)
	for _, pid := range frozen {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	// wal_receiver_timeout ends the streaming receiver; the next one connects to the frozen
	// primary and hangs there until Follow restarts it.
	var stuck int
	testenv.Eventually(t, time.Minute, func() error {
		pid, status := receiver()
		if pid == 0 || status == "streaming" {
			return fmt.Errorf("pg-1's WAL receiver: pid %d, %q", pid, status)
		}
		stuck = pid
		return nil
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		if pid, status := receiver(); pid == stuck {
			return fmt.Errorf("pg-1's WAL receiver %d is still %q", pid, status)
		}
		return nil
	})
}

// postgresProcesses are the postmaster of an agent's postgres and its children.
func postgresProcesses(t *testing.T, e *Engine) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.Config.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{postmaster}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(postmaster) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}
