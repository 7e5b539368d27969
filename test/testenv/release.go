package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PreviousRelease is the commit the upgrade tests start from (hack/previous-release).
func PreviousRelease(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "hack", "previous-release"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	tb.Fatal("hack/previous-release names no commit")
	return ""
}

// Git runs git in the repository and returns its output.
func Git(tb testing.TB, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %s (the previous release's files come from this repository's history: a clone with it, not a shallow one): %v",
			strings.Join(args, " "), err)
	}
	return out
}

// PreviousReleaseFiles are the files under dir (a directory of the repository), in its
// subdirectories too, as the previous release had them, by path.
func PreviousReleaseFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	commit := PreviousRelease(tb)
	files := map[string][]byte{}
	for _, name := range strings.Fields(string(Git(tb, "ls-tree", "-r", "--name-only", commit, dir+"/"))) {
		files[name] = Git(tb, "show", commit+":"+name)
	}
	return files
}
