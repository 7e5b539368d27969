package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// TendInterval is how often a mongod member looks at its replica set.
var TendInterval = 2 * time.Second

// freshMarker is left in a data directory the agent found empty, and removed once the member
// belongs to a replica set: only a member that never had data may initiate a set, so a first
// member that lost its volume does not start a second set beside the one its peers still run.
const freshMarker = ".datafleet-fresh"

// Control implements fwagent.Controller.
func (e *Engine) Control(ctx context.Context) error {
	t := time.NewTicker(TendInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.tend(ctx); err != nil {
			log.FromContext(ctx).Info("replica set: trying again", "reason", err.Error())
		}
	}
}

// ImmediateStopSignal implements fwagent.Controller; the control loop never asks for it.
func (e *Engine) ImmediateStopSignal() os.Signal { return e.StopSignal() }

// AfterStop implements fwagent.Controller.
func (e *Engine) AfterStop(context.Context) {}

// markFresh notes, before the server first writes to it, that the data directory is empty (a
// new ext4 volume's lost+found is not data).
func (e *Engine) markFresh() error {
	entries, err := os.ReadDir(e.Config.DataDir)
	if err != nil {
		return err
	}
	for _, d := range entries {
		if d.Name() != "lost+found" {
			return nil
		}
	}
	return os.WriteFile(filepath.Join(e.Config.DataDir, freshMarker), nil, 0o600)
}

func (e *Engine) fresh() bool {
	_, err := os.Stat(filepath.Join(e.Config.DataDir, freshMarker))
	return err == nil
}

// tend is one look at the replica set: initiate it (first member, fresh, no peer in a set), then
// on the primary create the administrator and move the membership one step toward the wanted one.
// FerretDB has no replica set: there is only the administrator to see to.
func (e *Engine) tend(ctx context.Context) error {
	if e.ferret() {
		return e.ensureAdmin(ctx, true)
	}
	h, err := e.hello(ctx)
	if err != nil {
		return err
	}
	if h.SetName == "" {
		return e.initiate(ctx)
	}
	if e.fresh() {
		_ = os.Remove(filepath.Join(e.Config.DataDir, freshMarker))
	}
	if !h.IsWritablePrimary {
		return e.ensureAdmin(ctx, false)
	}
	if err := e.ensureAdmin(ctx, true); err != nil {
		return err
	}
	want, err := e.wantedMembers()
	if err != nil {
		return err
	}
	return e.reconfigure(ctx, func(cur replSetConfig) (replSetConfig, bool) { return nextReplSet(cur, want) })
}

// wantedMembers is the ConfigMap's list of members, less those the operator asked to remove
// while the mounted file still lists them: the kubelet updates it up to a minute after the
// ConfigMap changed, and a member re-added meanwhile could leave the set without a majority once
// its pod is gone.
func (e *Engine) wantedMembers() ([]string, error) {
	listed, err := e.listedMembers()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for host := range e.removed {
		if !slices.Contains(listed, host) {
			delete(e.removed, host) // the file caught up
		}
	}
	return slices.DeleteFunc(listed, func(h string) bool { return e.removed[h] }), nil
}

func (e *Engine) listedMembers() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(e.Config.ConfigDir, MembersFile))
	if err != nil {
		return nil, fmt.Errorf("reading the wanted members: %w", err)
	}
	return strings.Fields(string(b)), nil
}

// initiate starts the replica set with this member alone, when it is the first member, its data
// directory was empty, and no wanted peer answers as a member of a set.
func (e *Engine) initiate(ctx context.Context) error {
	c := e.Config
	want, err := e.wantedMembers()
	if err != nil {
		return err
	}
	if len(want) == 0 || want[0] != c.Host {
		return nil // the primary adds this member
	}
	if !e.fresh() {
		return errors.New("this first member has data but no replica-set configuration; it waits to be added rather than start a second set")
	}
	for _, peer := range want[1:] {
		if h, err := helloAt(ctx, peer); err == nil && h.SetName != "" {
			return fmt.Errorf("peer %s already belongs to set %q; waiting to be added", peer, h.SetName)
		}
	}
	local, err := e.localClient()
	if err != nil {
		return err
	}
	cfg := initialReplSet(c.ReplicaSet, c.Host)
	// The localhost exception: no user exists yet, and the agent is on the member's own host.
	if err := local.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: cfg}}).Err(); err != nil {
		return fmt.Errorf("replSetInitiate: %w", err)
	}
	log.FromContext(ctx).Info("initiated the replica set", "set", c.ReplicaSet, "member", c.Host)
	return nil
}

// helloAt asks another member, without logging in.
func helloAt(ctx context.Context, host string) (hello, error) {
	var h hello
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + host + "/?directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=2000"))
	if err != nil {
		return h, err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h)
	return h, err
}

// reconfigure reads the set's configuration on this member (the primary) and, when step says so,
// sends the next one. Fields the operator does not decide (settings, protocol version) are kept.
func (e *Engine) reconfigure(ctx context.Context, step func(replSetConfig) (replSetConfig, bool)) error {
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	var res struct {
		Config bson.M `bson:"config"`
	}
	if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&res); err != nil {
		return fmt.Errorf("replSetGetConfig: %w", err)
	}
	raw, err := bson.Marshal(res.Config)
	if err != nil {
		return err
	}
	var cur replSetConfig
	if err := bson.Unmarshal(raw, &cur); err != nil {
		return fmt.Errorf("reading the replica-set configuration: %w", err)
	}
	next, ok := step(cur)
	if !ok {
		return nil
	}
	if added := addedHosts(cur, next); len(added) > 0 {
		if _, err := helloAt(ctx, added[0]); err != nil {
			return fmt.Errorf("waiting for %s to answer before adding it: %w", added[0], err)
		}
	}
	cfg := res.Config
	delete(cfg, "term") // the server sets it
	cfg["version"], cfg["members"] = next.Version, next.Members
	if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: cfg}}).Err(); err != nil {
		return fmt.Errorf("replSetReconfig to version %d: %w", next.Version, err)
	}
	log.FromContext(ctx).Info("reconfigured the replica set", "version", next.Version, "members", hostsOf(next))
	return nil
}

func hostsOf(c replSetConfig) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Host
	}
	return out
}

func addedHosts(cur, next replSetConfig) []string {
	var out []string
	for _, h := range hostsOf(next) {
		if !slices.Contains(hostsOf(cur), h) {
			out = append(out, h)
		}
	}
	return out
}

// stepDown hands the primary's role to a secondary before this member is restarted.
func (e *Engine) stepDown(ctx context.Context) error {
	h, err := e.hello(ctx)
	if err != nil {
		return err
	}
	if !h.IsWritablePrimary {
		return nil // stepped down already
	}
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	err = admin.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetStepDown", Value: 60}, {Key: "secondaryCatchUpPeriodSecs", Value: 15}}).Err()
	if err != nil && !mongo.IsNetworkError(err) { // older servers close connections as they step down
		return fmt.Errorf("replSetStepDown: %w", err)
	}
	return nil
}

// removeMember takes host out of the set's configuration, before its pod goes: removing it
// after would leave a set of two with one member gone, which has no majority to reconfigure with.
func (e *Engine) removeMember(ctx context.Context, host string) error {
	if host == "" || host == e.Config.Host {
		return fmt.Errorf("%s: %q is not another member", ActionRemoveMember, host)
	}
	h, err := e.hello(ctx)
	if err != nil {
		return err
	}
	if !h.IsWritablePrimary {
		return errors.New("this member is not the primary")
	}
	e.mu.Lock()
	if e.removed == nil {
		e.removed = map[string]bool{}
	}
	e.removed[host] = true
	e.mu.Unlock()
	err = e.reconfigure(ctx, func(cur replSetConfig) (replSetConfig, bool) {
		if !slices.Contains(hostsOf(cur), host) {
			return cur, false
		}
		return nextReplSet(cur, slices.DeleteFunc(hostsOf(cur), func(h string) bool { return h == host }))
	})
	if err != nil {
		return err
	}
	// Done only once this member's own list has dropped the host too: until then the operator
	// keeps the pod, and asks again.
	listed, err := e.listedMembers()
	if err != nil {
		return err
	}
	if slices.Contains(listed, host) {
		return fmt.Errorf("%s left the set; waiting for the wanted members to drop it", host)
	}
	return nil
}
