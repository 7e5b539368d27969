package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Helpers for tests that run real engine servers on loopback.

// reserve takes port p for this test process for its whole life, across the test binaries `go
// test ./...` runs side by side (each draws its ports independently): an exclusive lock on a file
// named after the port, released by the kernel when the process exits. A port another process
// holds is refused; p is also marked given, whatever the outcome.
func reserve(p int) bool {
	portsGiven[p] = true
	dir := filepath.Join(os.TempDir(), "datafleet-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: fall back to this process's own bookkeeping
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	portLocks = append(portLocks, f) // kept open (and referenced, or the GC would close it)
	return true
}

// FreePort is a TCP port that nothing listened on a moment ago, on loopback and on the wildcard
// address (RabbitMQ listens on ::). It is drawn at random from below the kernel's ephemeral range,
// never from it: a server restarted on its port must not find that the port has meanwhile become
// the source port of some client connection (this happened in CI with a 127.0.0.1:0 port). A port
// is handed out once per test binary and reserved against the other test binaries running at the
// same time, so a stopped server's port stays its own.
func FreePort(tb testing.TB) int {
	tb.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := portsLow + rand.IntN(portsHigh-portsLow)
		if portsGiven[p] || !reserve(p) {
			continue
		}
		if !listenable(p) {
			continue // reserved now, so this process will not draw it again either
		}
		portsGiven[p] = true
		return p
	}
	tb.Fatalf("no free TCP port in [%d, %d)", portsLow, portsHigh)
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
	portLocks  []*os.File
	// portsLow..portsHigh lies below Linux's default ephemeral range (32768-60999, checked in
	// init) and above the well-known and registered ports most daemons take.
	portsLow, portsHigh = 20000, 32768
)

func init() {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil && lo < portsHigh && lo > portsLow+1000 {
			portsHigh = lo
		}
	}
}

func listenable(port int) bool {
	for _, host := range []string{"127.0.0.1", "", "::1"} {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			if host == "::1" && !strings.Contains(err.Error(), "address already in use") {
				continue // no IPv6 loopback on this machine
			}
			return false
		}
		l.Close()
	}
	return true
}

// ServerUser is the credential to run an engine's server with when the test runs as root (the
// servers refuse root, or should not run as it), owning dirs; nil when the test is not root.
// The Debian package that installs the server creates the user.
func ServerUser(tb testing.TB, name, pkg string, dirs ...string) *syscall.Credential {
	tb.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		tb.Fatalf("running as root needs a %s user (apt-get install %s creates it): %v", name, pkg, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range dirs {
		if err := os.Chown(d, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// Proc is what /proc/PID/stat says of a process.
type Proc struct {
	Comm, PPID string
	// Start is when it started, in clock ticks since boot (field 22): a process restarted under
	// the same PID differs.
	Start string
}

// ReadProc reads /proc/PID/stat. The command name (field 2) is in parentheses and may hold
// spaces, so the other fields are counted after it.
func ReadProc(pid int) (Proc, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return Proc{}, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	fields := strings.Fields(string(stat[end+1:])) // state, ppid, ..., starttime (the 20th)
	if len(fields) < 20 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	return Proc{Comm: string(stat[open+1 : end]), PPID: fields[1], Start: fields[19]}, nil
}

// ProcessStart is when process pid started (Proc.Start).
func ProcessStart(tb testing.TB, pid int) string {
	tb.Helper()
	p, err := ReadProc(pid)
	if err != nil {
		tb.Fatalf("process %d: %v", pid, err)
	}
	return p.Start
}

// Children are the processes whose parent is pid.
func Children(pid int) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, _ := strconv.Atoi(filepath.Base(d))
		if p, err := ReadProc(child); err == nil && p.PPID == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// ChildOf is pid's only child: the server its agent runs.
func ChildOf(tb testing.TB, pid int) int {
	tb.Helper()
	c := Children(pid)
	if len(c) != 1 {
		tb.Fatalf("process %d has children %v, want one (the server)", pid, c)
	}
	return c[0]
}
