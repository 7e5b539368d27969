package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestTheGarbageCollectorAimsUnderTheContainersMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("GOMEMLIMIT", "")
	if got := limitMemory([]string{write("v2", "268435456\n")}); got != 241591910 || debug.SetMemoryLimit(-1) != got {
		t.Fatalf("a 256 MiB limit gave %d (runtime %d), want 90%%: 241591910", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	for _, none := range []string{"max\n", "9223372036854771712\n"} {
		if got := limitMemory([]string{write("none", none)}); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Fatalf("no limit (%q) set one: %d", none, got)
		}
	}
	// cgroup v1's file when v2's is not there.
	if got := limitMemory([]string{filepath.Join(dir, "absent"), write("v1", "1073741824")}); got != 966367641 {
		t.Fatalf("a 1 GiB v1 limit gave %d, want 966367641", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "500MiB")
	if got := limitMemory([]string{write("v2b", "268435456")}); got != 0 {
		t.Fatalf("GOMEMLIMIT set, yet the cgroup's limit was taken: %d", got)
	}
}
