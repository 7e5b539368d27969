package agentruntime

// In-place agent upgrades. An operator release brings a new agent binary; restarting every pod to
// run it would restart every database in the fleet. Instead the operator PUTs its own binary to
// each agent (PathAgent, operator's certificate only); the agent verifies the digest, runs the
// binary once to see that it works here (agent.VersionCommand), stops its control loop, and
// executes it in its own place. The PID stays, so the engine's process stays its child and keeps
// running; the new agent finds the handover in its environment and adopts the process instead of
// bootstrapping and starting one (agent.Adopter). CloudNativePG's instance manager upgrades itself
// the same way.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// envHandover carries the handover to the new agent; it is removed from the environment at once,
// so the engine's later children do not inherit it.
const envHandover = "DATAFLEET_AGENT_HANDOVER"

// maxBinary bounds a binary the agent accepts (the manager is about 100 MB).
const maxBinary = 512 << 20

// versionTimeout bounds the trial run of a received binary.
const versionTimeout = 30 * time.Second

// binaryPrefix names the directories of the binaries an agent received, in the engine's
// AgentDir. A binary keeps the running one's file name, so the process keeps its name (comm).
const binaryPrefix = "datafleet-agent-"

// handover is what the old agent passes to the new one.
type handover struct {
	// PID of the engine's process.
	PID int `json:"pid"`
	// Applied is the digest of the reloaded files the process last applied (see watchFiles).
	Applied []byte `json:"applied,omitempty"`
	// State is the engine's Adopter.Handover.
	State []byte `json:"state,omitempty"`
}

// takeHandover reads and removes the handover from the environment: nil when this agent was
// started by the container, not by an upgrade.
func takeHandover() (*handover, error) {
	v, ok := os.LookupEnv(envHandover)
	if !ok {
		return nil, nil
	}
	_ = os.Unsetenv(envHandover)
	h := &handover{}
	if err := json.Unmarshal([]byte(v), h); err != nil {
		return nil, fmt.Errorf("reading the previous agent's handover: %w", err)
	}
	if h.PID <= 1 {
		return nil, fmt.Errorf("the previous agent's handover names no process (pid %d)", h.PID)
	}
	return h, nil
}

// upgrader serves PathAgent and holds operations off while the agent hands over.
type upgrader struct {
	adopter agent.Adopter // nil: this engine's agent cannot be replaced in place
	// busy is held for reading by every action and stream, and for writing by an upgrade from
	// the moment it is accepted: an agent never replaces itself in the middle of a dump.
	busy sync.RWMutex
	// next receives the path of a verified binary; Run hands over to it.
	next chan string

	selfOnce sync.Once
	self     agent.Info
	selfErr  error
}

func newUpgrader(e agent.Engine) *upgrader {
	a, _ := e.(agent.Adopter)
	return &upgrader{adopter: a, next: make(chan string, 1)}
}

// info is the running binary's Info, computed once (hashing the binary reads all of it).
func (u *upgrader) info() (agent.Info, error) {
	u.selfOnce.Do(func() {
		u.self, u.selfErr = agent.Self()
		u.self.Replaceable = u.adopter != nil
	})
	return u.self, u.selfErr
}

// hold wraps an operation the agent must not hand over in the middle of.
func (u *upgrader) hold(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u.busy.RLock()
		defer u.busy.RUnlock()
		h(w, r)
	}
}

func (u *upgrader) get(w http.ResponseWriter, _ *http.Request) {
	info, err := u.info()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(info)
}

// put receives a new binary from the operator, and only from the operator: the agents'
// certificate is in every pod of the instance, and a binary run as PID 1 is everything.
func (u *upgrader) put(w http.ResponseWriter, r *http.Request) {
	logger := log.FromContext(r.Context())
	if clientIdentity(r) != agent.OperatorIdentity {
		http.Error(w, "only the operator replaces the agent", http.StatusForbidden)
		return
	}
	if u.adopter == nil {
		http.Error(w, "this engine's agent cannot take over a running process: it is replaced with its pod", http.StatusNotImplemented)
		return
	}
	want := r.Header.Get(agent.HeaderDigest)
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		http.Error(w, "the "+agent.HeaderDigest+" header must be the binary's sha256 in hex", http.StatusBadRequest)
		return
	}
	if info, err := u.info(); err == nil && info.Digest == want {
		fmt.Fprintln(w, "this binary runs already")
		return
	}
	// Received before anything is held: the operations go on meanwhile.
	path, err := u.receive(r.Context(), http.MaxBytesReader(w, r.Body, maxBinary), want)
	if err != nil {
		logger.Error(err, "refused a new agent binary")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !u.busy.TryLock() {
		http.Error(w, "an operation or another upgrade is in progress: try again later", http.StatusConflict)
		return
	}
	logger.Info("received a new agent binary: handing over to it", "digest", want)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "handing over")
	u.next <- path // the buffer holds one, and busy lets only one upgrade this far
}

// receive writes the binary to the engine's AgentDir, checks its digest and runs it once.
func (u *upgrader) receive(ctx context.Context, body io.Reader, want string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	base := u.adopter.AgentDir()
	dir := filepath.Join(base, binaryPrefix+want[:16])
	removeOldBinaries(base, dir, self)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(self))
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o700); err != nil {
		f.Close()
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("receiving the binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", fmt.Errorf("the binary's sha256 is %s, not %s as announced", got, want)
	}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tmp, agent.VersionCommand).Output()
	if err != nil {
		return "", fmt.Errorf("the binary does not run here (%s %s): %w", filepath.Base(tmp), agent.VersionCommand, err)
	}
	var info agent.Info
	if err := json.Unmarshal(out, &info); err != nil || info.Digest != want {
		return "", fmt.Errorf("the binary does not say it is itself (%s %s printed %q)", filepath.Base(tmp), agent.VersionCommand, strings.TrimSpace(string(out)))
	}
	return path, os.Rename(tmp, path)
}

// removeOldBinaries deletes what earlier upgrades left in base, except the directory of the
// running binary self (Linux would keep the file anyway) and keep, where an upload may be under way.
func removeOldBinaries(base, keep, self string) {
	old, _ := filepath.Glob(filepath.Join(base, binaryPrefix+"*"))
	for _, d := range old {
		if d != keep && d != filepath.Dir(self) {
			_ = os.RemoveAll(d)
		}
	}
}

// handOver executes path in this process's place with the handover in its environment. It
// returns only if that fails.
func handOver(path string, h handover) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	env := append(os.Environ(), envHandover+"="+string(b))
	return unix.Exec(path, os.Args, env)
}

// adopt waits for the process the previous agent started. It is this process's child still: the
// PID did not change across the exec.
func adopt(pid int) (*os.Process, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	if err := p.Signal(unix.Signal(0)); err != nil {
		return nil, fmt.Errorf("the engine's process %d is gone: %w", pid, err)
	}
	return p, nil
}

// PrintVersion prints the running binary's Info as JSON: agent.VersionCommand of a binary that
// runs agents.
func PrintVersion(w io.Writer) error {
	info, err := agent.Self()
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(info)
}

// errHandover ends Run when a handover failed after the control loop had stopped: the container
// restarts with its pod's agent.
var errHandover = errors.New("handing over to the new agent failed")
