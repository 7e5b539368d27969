package testenv

import (
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// Helpers for tests that run real engine servers on loopback.

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
