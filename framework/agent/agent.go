// Package agent is the engine-independent part of the in-pod instance agent: the manager binary
// run as PID 1 of an engine's container ("manager agent <engine>"). It prepares the data directory
// through the engine, starts and supervises the engine's process, forwards stop signals to it, and
// answers health, readiness and role over HTTPS (mutual TLS for all but the probes, see tls.go).
// The container ends when the engine's process ends, so the kubelet's restart policy is the
// supervisor of last resort.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/primary"
)

// ReloadInterval is how often a Reloader's files are compared with what was last applied.
var ReloadInterval = 2 * time.Second

// watchFiles calls Reload whenever the files' contents differ from the last applied ones; a
// failed reload is tried again at the next tick.
func watchFiles(ctx context.Context, r Reloader, applied string) {
	t := time.NewTicker(ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
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

// Listen is where the agent serves: HTTPS on Addr with the certificate, key and CA in TLSDir
// (see tls.go).
type Listen struct {
	Addr   string
	TLSDir string
}

// Run bootstraps the engine, runs its process and serves HTTPS until the process ends, the
// engine's control loop ends, or ctx is cancelled (then it stops the process with the engine's
// stop signal and waits for it).
func Run(ctx context.Context, e Engine, l Listen) error {
	if l.TLSDir == "" {
		return errors.New("agent: no TLS directory (--" + FlagTLSDir + "): the agent serves only over mutual TLS")
	}
	tlsConfig, err := ServerTLS(l.TLSDir)
	if err != nil {
		return err
	}
	// Taken before Bootstrap reads the files, so that a change while it runs is not missed.
	var applied string
	reloader, reloads := e.(Reloader)
	if reloads {
		applied = digestFiles(reloader.ReloadFiles())
	}
	if err := e.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return err
	}
	cmd := e.Command()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	var exited atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		exited.Store(true)
		done <- err
	}()
	srv := &http.Server{Handler: handler(e, &exited), ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConfig}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	ctl, _ := e.(Controller)
	controlCtx, stopControl := context.WithCancel(ctx)
	defer stopControl()
	if reloads {
		go watchFiles(controlCtx, reloader, applied)
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

	select {
	case err := <-done:
		if err == nil {
			return errors.New("the engine's process exited")
		}
		return fmt.Errorf("the engine's process exited: %w", err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(e.StopSignal())
		err := <-done
		stopControl()
		afterStop()
		return err
	case cause := <-controlled:
		sig := e.StopSignal()
		var imm interface{ Immediate() bool }
		if errors.As(cause, &imm) && imm.Immediate() {
			sig = ctl.ImmediateStopSignal()
		}
		_ = cmd.Process.Signal(sig)
		<-done
		afterStop()
		return fmt.Errorf("stopped by the agent's control loop: %w", cause)
	}
}

// Endpoints served by the agent. The operator's probes and observer use them.
const (
	PathHealth = "/healthz" // the engine's process runs
	PathReady  = "/readyz"  // the engine serves clients
	PathStatus = "/status"  // Status as JSON
	PathAction = "/action/" // followed by the action's name (Actor)
	PathDump   = "/stream/dump"
	PathLoad   = "/stream/load"
)

// trailerResult ends a dump's response: "ok" after a complete dump, else the error. A dump's
// status code is sent before the dump runs, so only the trailer can say how it ended.
const trailerResult = "Datafleet-Result"

// Handler serves e's status, probes and actions as Run does, for an engine whose process the
// caller runs (tests stand in for a server that cannot run on the machine); serve it with
// ServerTLS, the listener configuration Run uses.
func Handler(e Engine) http.Handler { return handler(e, &atomic.Bool{}) }

// probeTTL is how long /readyz reuses a status. The probe needs no certificate, so whoever can
// reach the port may ask it as often as they like; the engine is asked at most once per probeTTL
// (a PostgreSQL status opens a session).
const probeTTL = time.Second

// cachedStatus asks the engine at most once per probeTTL, one caller at a time.
type cachedStatus struct {
	mu   sync.Mutex
	at   time.Time
	last Status
}

func (c *cachedStatus) get(ask func() Status) Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= probeTTL {
		c.last, c.at = ask(), time.Now()
	}
	return c.last
}

func handler(e Engine, exited *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		if exited.Load() {
			http.Error(w, "the engine's process has exited", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	status := func(r *http.Request) Status {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		return e.Status(ctx)
	}
	probed := &cachedStatus{}
	mux.HandleFunc(PathReady, func(w http.ResponseWriter, r *http.Request) {
		if s := probed.get(func() Status { return status(r) }); !s.Ready {
			http.Error(w, s.Detail, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle(PathStatus, authorized(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status(r))
	}))
	if actor, ok := e.(Actor); ok {
		mux.Handle("POST "+PathAction+"{action}", authorized(func(w http.ResponseWriter, r *http.Request) { act(actor, w, r) }))
		if s, ok := e.(Streamer); ok {
			mux.Handle("POST "+PathDump, authorized(func(w http.ResponseWriter, r *http.Request) { dump(s, w, r) }))
			mux.Handle("POST "+PathLoad, authorized(func(w http.ResponseWriter, r *http.Request) { load(s, w, r) }))
		}
	}
	return mux
}

// authorized serves only clients whose verified certificate names one of ClientNames.
func authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isClient(clientIdentity(r)) {
			http.Error(w, "a client certificate of this instance is required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

func dump(s Streamer, w http.ResponseWriter, r *http.Request) {
	log.FromContext(r.Context()).Info("dump requested")
	w.Header().Set("Trailer", trailerResult)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	result := "ok"
	if err := s.Dump(r.Context(), w); err != nil {
		log.FromContext(r.Context()).Error(err, "dump failed")
		result = strings.Join(strings.Fields(err.Error()), " ") // a header value is one line
	}
	w.Header().Set(trailerResult, result)
}

func load(s Streamer, w http.ResponseWriter, r *http.Request) {
	log.FromContext(r.Context()).Info("load requested")
	summary, err := s.Load(r.Context(), r.Body)
	if err != nil {
		log.FromContext(r.Context()).Error(err, "load failed")
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	log.FromContext(r.Context()).Info("loaded", "summary", summary)
	fmt.Fprintln(w, summary)
}

func act(a Actor, w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	logger := log.FromContext(r.Context())
	if action == primary.ActionConfirm {
		// Asked every second by a primary that cannot renew its lease; the asking keeper logs
		// when its round's outcome changes, so each request is logged only at debug level.
		logger = logger.V(1)
	}
	logger.Info("action requested", "action", action)
	if err := a.Act(r.Context(), action, r.Form); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	fmt.Fprintln(w, "done")
}

// SignalContext is cancelled by SIGTERM or SIGINT, which the kubelet sends to PID 1 to stop a container.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
