package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUnknownEngineIsAClearError(t *testing.T) {
	err := run([]string{"--engines=postgres,nope,mongo"})
	if err == nil || !strings.Contains(err.Error(), "--engines: unknown engine(s) nope, mongo: this manager knows mongodb, postgres, rabbitmq") {
		t.Fatalf("err = %v", err)
	}
}

func TestWorkersMustBePositive(t *testing.T) {
	err := run([]string{"--max-concurrent-reconciles=0"})
	if err == nil || !strings.Contains(err.Error(), "--max-concurrent-reconciles must be at least 1") {
		t.Fatalf("err = %v", err)
	}
	err = run([]string{"--rollout-max-concurrent=0"})
	if err == nil || !strings.Contains(err.Error(), "--rollout-max-concurrent must be at least 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestAgentNeedsAKnownEngine(t *testing.T) {
	if err := run([]string{"agent"}); err == nil || !strings.Contains(err.Error(), "name the engine") {
		t.Errorf("no engine: err = %v", err)
	}
	if err := run([]string{"agent", "mysql"}); err == nil || !strings.Contains(err.Error(), `no agent for engine "mysql"`) {
		t.Errorf("unknown engine: err = %v", err)
	}
	if err := run([]string{"agent", "postgres", "--no-such-flag"}); err == nil {
		t.Error("an unknown agent flag should be an error")
	}
}

func TestInstallAgentCopiesTheBinary(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "manager")
	if err := run([]string{"install-agent", dst}); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	a, _ := os.ReadFile(self)
	b, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("the copy differs from the running binary (err %v)", err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm()&0o111 == 0 {
		t.Errorf("the copy is not executable: %v", st.Mode())
	}
}

// The chart's default maintenance window reaches the manager as JSON; a bad one stops it at start.
func TestMaintenanceWindowFlag(t *testing.T) {
	w, err := maintenanceWindow(`{"days":["Sat","Sun"],"duration":"2h","startTime":"02:00"}`)
	if err != nil || w == nil || w.Duration.Duration != 2*time.Hour || w.StartTime != "02:00" || len(w.Days) != 2 {
		t.Fatalf("window %+v, %v", w, err)
	}
	if w, err := maintenanceWindow(""); w != nil || err != nil {
		t.Fatalf("empty: %+v, %v", w, err)
	}
	for _, bad := range []string{`{"startTime":"02:00","duration":"2h","timeZone":"Mars/Olympus"}`, `{"start":"02:00"}`, `{"startTime":"02:00","duration":"1m"}`} {
		if _, err := maintenanceWindow(bad); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}
