package main

import (
	"strings"
	"testing"
)

func TestUnknownEngineIsAClearError(t *testing.T) {
	err := run([]string{"--engines=postgres,nope"})
	if err == nil || !strings.Contains(err.Error(), "--engines: unknown engine(s) postgres, nope: this manager knows no engines") {
		t.Fatalf("err = %v", err)
	}
}

func TestWorkersMustBePositive(t *testing.T) {
	err := run([]string{"--max-concurrent-reconciles=0"})
	if err == nil || !strings.Contains(err.Error(), "--max-concurrent-reconciles must be at least 1") {
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
