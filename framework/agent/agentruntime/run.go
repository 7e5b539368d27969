// Package agentruntime is the engine-independent runtime of the in-pod instance agent: the manager
// binary run as PID 1 of an engine's container ("manager agent <engine>"). It prepares the data
// directory through the engine, starts and supervises the engine's process, forwards stop signals
// to it, and answers health, readiness and role over HTTPS (mutual TLS for all but the probes, see
// tls.go). The container ends when the engine's process ends, so the kubelet's restart policy is
// the supervisor of last resort. What an engine implements, and what the operator reads, is
// framework/agent: the operator's side never imports this package.
package agentruntime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/agent"
)

// ReloadInterval is how often an agent.Reloader's files are compared with what was last applied.
var ReloadInterval = 2 * time.Second

// watchFiles calls Reload whenever the files' contents differ from the last applied ones; a
// failed reload is tried again at the next tick. It returns the digest last applied.
func watchFiles(ctx context.Context, r agent.Reloader, applied string) string {
	t := time.NewTicker(ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return applied
		case <-t.C:
		}
		d := digestFiles(r.ReloadFiles())
		if d == applied {
			continue
		}
		if err := r.Reload(ctx); err != nil {
			log.FromContext(ctx).Error(err, "reload failed; trying again")
			continue
		}
		log.FromContext(ctx).Info("configuration files changed: reloaded")
		applied = d
	}
}

// digestFiles hashes the files' contents; a missing or unreadable file counts as empty.
func digestFiles(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	return string(h.Sum(nil))
}

// Run bootstraps the engine, runs its process and serves HTTPS until the process ends or ctx is
// cancelled (then it stops the process with the engine's stop signal and waits for it). When the
// engine's control loop ends, the process is stopped, bootstrapped and started again in place
// (life.go). An agent started by a previous one's handover (upgrade.go) adopts the running
// process instead.
func Run(ctx context.Context, e agent.Engine, l agent.Listen) error {
	if l.TLSDir == "" {
		return errors.New("agent: no TLS directory (--" + agent.FlagTLSDir + "): the agent serves only over mutual TLS")
	}
	tlsConfig, err := ServerTLS(l.TLSDir)
	if err != nil {
		return err
	}
	logger := log.FromContext(ctx)
	up := newUpgrader(e)
	previous, err := takeHandover()
	if err != nil {
		return err
	}
	reloader, _ := e.(agent.Reloader)
	// bootstrap prepares the engine to start and returns the digest of the files it applied,
	// taken before Bootstrap reads them, so that a change while it runs is not missed.
	bootstrap := func() (applied string, err error) {
		if reloader != nil {
			applied = digestFiles(reloader.ReloadFiles())
		}
		return applied, e.Bootstrap(ctx)
	}
	var applied string
	var proc *os.Process
	if previous != nil {
		if proc, applied, err = adoptProcess(ctx, up, previous, e.StopSignal()); err != nil {
			return err
		}
	} else if applied, err = bootstrap(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return err
	}
	lf := &life{}
	if l.MetricsAddr != "" {
		mln, err := net.Listen("tcp", l.MetricsAddr)
		if err != nil {
			ln.Close()
			return err
		}
		// Closed with the process on a handover (sockets are close-on-exec), like ln.
		msrv := &http.Server{Handler: metricsHandler(e, l.TLSDir, up, lf), ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConfig}
		go func() { _ = msrv.ServeTLS(mln, "", "") }()
		defer msrv.Close()
	}
	srv := &http.Server{Handler: handler(e, lf, up), ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConfig}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	s := &supervisor{e: e, reloader: reloader, up: up, lf: lf, srv: srv}
	s.ctl, _ = e.(agent.Controller)
	for {
		if proc == nil {
			cmd := e.Command()
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("starting %s: %w", cmd.Path, err)
			}
			proc = cmd.Process
			lf.begin(time.Now())
		}
		stopped, err := s.supervise(ctx, proc, applied)
		if stopped == nil {
			return err
		}
		// Started again in place: see life.go for why not by the kubelet.
		wait := lf.restart(time.Now(), stopped.Error())
		logger.Info("the control loop stopped the engine: starting it again in this container", "reason", stopped.Error(), "after", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if applied, err = bootstrap(); err != nil {
			return fmt.Errorf("bootstrap after the control loop stopped the engine (%v): %w", stopped, err)
		}
		proc = nil
	}
}

// supervisor runs the engine's process, one process at a time.
type supervisor struct {
	e        agent.Engine
	ctl      agent.Controller
	reloader agent.Reloader // nil: the engine reloads nothing
	up       *upgrader
	lf       *life
	srv      *http.Server
}

// supervise runs beside proc until it ends: the process exits (an error), ctx ends (the process
// is stopped, and supervise returns how it ended), an upgrade hands the process over (only a
// failed handover returns), or the control loop ends, which stops the process and returns why
// in stopped, for Run to start the engine again.
func (s *supervisor) supervise(ctx context.Context, proc *os.Process, applied string) (stopped error, err error) {
	e, ctl, lf := s.e, s.ctl, s.lf
	done := make(chan error, 1)
	go func() {
		// Waited for as a process, not through exec.Cmd: an adopted process has none, and the
		// output goes to the container's own stdout and stderr, with nothing to copy.
		st, err := proc.Wait()
		if !lf.stopping.Load() {
			lf.exited.Store(true)
		}
		if err == nil && !st.Success() {
			err = errors.New(st.String())
		}
		done <- err
	}()

	controlCtx, stopControl := context.WithCancel(ctx)
	defer stopControl()
	watched := make(chan string, 1)
	if s.reloader != nil {
		go func() { watched <- watchFiles(controlCtx, s.reloader, applied) }()
	}
	controlled := make(chan error, 1)
	if ctl != nil {
		go func() { controlled <- ctl.Control(controlCtx) }()
	}
	// afterStop gets its own context: the agent's may already be cancelled by the stop signal.
	afterStop := func() {
		if ctl != nil {
			actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctl.AfterStop(actx)
		}
	}
	// stoppedByControl stops the process as the control loop's end asks (at once if it says so).
	stoppedByControl := func(cause error) error {
		sig := e.StopSignal()
		var imm interface{ Immediate() bool }
		if errors.As(cause, &imm) && imm.Immediate() {
			sig = ctl.ImmediateStopSignal()
		}
		// The signal first: a fence must not wait for anything. Then the reload loop ends, so that
		// the engine started again has only its own.
		lf.stopping.Store(true)
		_ = proc.Signal(sig)
		<-done
		stopControl()
		if s.reloader != nil {
			<-watched
		}
		afterStop()
		if cause == nil {
			cause = errors.New("the control loop ended")
		}
		return cause
	}

	select {
	case err := <-done:
		if err == nil {
			return nil, errors.New("the engine's process exited")
		}
		return nil, fmt.Errorf("the engine's process exited: %w", err)
	case <-ctx.Done():
		lf.stopping.Store(true)
		_ = proc.Signal(e.StopSignal())
		err := <-done
		stopControl()
		afterStop()
		return nil, err
	case cause := <-controlled:
		return stoppedByControl(cause), nil
	case path := <-s.up.next:
		// The control loop stops first, so that what it hands over is final; the reload loop
		// too, so that the new agent knows what the process applied. A loop that ended on its
		// own meanwhile (a primary fencing) is obeyed, not handed over.
		stopControl()
		if ctl != nil {
			if cause := <-controlled; cause != nil && !errors.Is(cause, context.Canceled) {
				return stoppedByControl(cause), nil
			}
		}
		next := handover{PID: proc.Pid}
		if s.reloader != nil {
			next.Applied = []byte(<-watched)
		}
		var err error
		if next.State, err = s.up.adopter.Handover(); err != nil {
			return nil, fmt.Errorf("%w: %w", errHandover, err)
		}
		// The upgrade's answer goes out; an action that came meanwhile waits on busy and
		// is cut off by the exec (the operator repeats it: actions are idempotent).
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.srv.Shutdown(sctx)
		cancel()
		log.FromContext(ctx).Info("handing over to the new agent", "binary", path, "pid", proc.Pid)
		err = handOver(path, next)
		return nil, fmt.Errorf("%w: %w", errHandover, err)
	}
}

// adoptProcess takes over the process a previous agent handed over.
func adoptProcess(ctx context.Context, up *upgrader, h *handover, stop os.Signal) (*os.Process, string, error) {
	if up.adopter == nil {
		return nil, "", fmt.Errorf("%w: this engine's agent cannot adopt a running process", errHandover)
	}
	proc, err := adopt(h.PID)
	if err != nil {
		return nil, "", err
	}
	if err := up.adopter.Adopt(ctx, h.State); err != nil {
		// Stopped cleanly rather than killed with the container when this process ends.
		_ = proc.Signal(stop)
		_, _ = proc.Wait()
		return nil, "", fmt.Errorf("adopting the engine's process %d: %w", h.PID, err)
	}
	info, _ := up.info()
	log.FromContext(ctx).Info("took over the running engine from the previous agent", "pid", h.PID, "version", info.Version, "digest", info.Digest)
	return proc, string(h.Applied), nil
}

// SignalContext is cancelled by SIGTERM or SIGINT, which the kubelet sends to PID 1 to stop a container.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
