package agentruntime_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
	"github.com/datafleet-dev/datafleet/framework/agent/agenttest"
)

// stepping is an engine whose process is a real one (sleep) and whose control loop ends once,
// when the test says, as a primary's does when it is asked to step down.
type stepping struct {
	stepDown chan struct{}

	mu         sync.Mutex
	bootstraps int
	afterStops int
	controls   int
	processes  []*exec.Cmd
}

type stepDown struct{}

func (stepDown) Error() string   { return "asked to step down" }
func (stepDown) Immediate() bool { return false }

func (e *stepping) Bootstrap(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bootstraps++
	return nil
}

func (e *stepping) Command() *exec.Cmd {
	e.mu.Lock()
	defer e.mu.Unlock()
	cmd := exec.Command("sleep", "300")
	e.processes = append(e.processes, cmd)
	return cmd
}

func (e *stepping) StopSignal() os.Signal { return syscall.SIGTERM }

func (e *stepping) Status(context.Context) fwagent.Status {
	return fwagent.Status{Ready: true, Role: "replica"}
}

func (e *stepping) Control(ctx context.Context) error {
	e.mu.Lock()
	e.controls++
	first := e.controls == 1
	e.mu.Unlock()
	if first {
		select {
		case <-e.stepDown:
			return stepDown{}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (e *stepping) ImmediateStopSignal() os.Signal { return syscall.SIGKILL }

func (e *stepping) AfterStop(context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.afterStops++
}

func (e *stepping) counts() (bootstraps, afterStops, controls int, procs []*exec.Cmd) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bootstraps, e.afterStops, e.controls, append([]*exec.Cmd(nil), e.processes...)
}

// When the control loop stops the engine, the agent stops its process, calls AfterStop and
// starts the engine again in place (Bootstrap, a new process, Control): Run does not end, so the
// kubelet's crash back-off never applies, and the agent reports the restart in its status.
func TestTheEngineStoppedByItsControlLoopStartsAgainInPlace(t *testing.T) {
	inst := agenttest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := &stepping{stepDown: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentruntime.Run(ctx, e, inst.Listen(addr)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	status := func() (*fwagent.Status, error) {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		return inst.At(addr).Status(sctx)
	}
	eventually(t, func() error {
		_, err := status()
		return err
	})
	_, _, _, first := e.counts()
	if len(first) != 1 {
		t.Fatalf("%d processes started, want 1", len(first))
	}
	close(e.stepDown)

	eventually(t, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended (%v): the engine must start again in place", err)
		default:
		}
		b, a, c, procs := e.counts()
		if b != 2 || a != 1 || c != 2 || len(procs) != 2 {
			return fmt.Errorf("bootstraps %d, after-stops %d, control loops %d, processes %d; want 2, 1, 2, 2", b, a, c, len(procs))
		}
		return nil
	})
	_, _, _, procs := e.counts()
	if err := syscall.Kill(procs[0].Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the first process (%d): %v, want stopped and gone", procs[0].Process.Pid, err)
	}
	if err := syscall.Kill(procs[1].Process.Pid, 0); err != nil {
		t.Errorf("the second process does not run: %v", err)
	}
	st, err := status()
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Restarts; r == nil || r.Count != 1 || r.LastReason != "asked to step down" {
		t.Errorf("the agent's status says restarts %+v, want 1, asked to step down", r)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) && err.Error() != "signal: terminated" {
		t.Errorf("Run ended with %v", err)
	}
	done <- nil
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
