package testenv

import (
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// logSink sends manager logs to stderr only when DATAFLEET_TEST_LOGS is set, so test output
// stays readable.
func logSink() io.Writer {
	if os.Getenv("DATAFLEET_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// goTool is the path of a server hack/go-tool.sh builds from module at version: $env when set,
// else the cache's copy. A missing one fails the test, saying how to get it.
func goTool(tb testing.TB, env, module, version string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	name := path.Base(module)
	p := filepath.Join(cacheDir(), "bin", name+"-"+version)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("no %s at %s: run `make test` (it builds it), or `hack/go-tool.sh %s %s`, or set %s", name, p, module, version, env)
	}
	return p
}

// startServer starts a server process for the test and kills it when the test ends; its output
// goes to logSink unless cmd sends it elsewhere.
func startServer(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	if cmd.Stdout == nil {
		cmd.Stdout = logSink()
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logSink()
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}
