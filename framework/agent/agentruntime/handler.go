package agentruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/primary"
)

// Handler serves e's status, probes and actions as Run does, for an engine whose process the
// caller runs (tests stand in for a server that cannot run on the machine); serve it with
// ServerTLS, the listener configuration Run uses.
func Handler(e agent.Engine) http.Handler { return handler(e, &life{}, newUpgrader(e)) }

// probeTTL is how long /readyz reuses a status. The probe needs no certificate, so whoever can
// reach the port may ask it as often as they like; the engine is asked at most once per probeTTL
// (a PostgreSQL status opens a session).
const probeTTL = time.Second

// cachedStatus asks the engine at most once per probeTTL, one caller at a time.
type cachedStatus struct {
	mu   sync.Mutex
	at   time.Time
	last agent.Status
}

func (c *cachedStatus) get(ask func() agent.Status) agent.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= probeTTL {
		c.last, c.at = ask(), time.Now()
	}
	return c.last
}

func handler(e agent.Engine, lf *life, up *upgrader) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(agent.PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		if lf.exited.Load() {
			http.Error(w, "the engine's process has exited", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	status := func(r *http.Request) agent.Status {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		st := e.Status(ctx)
		st.Restarts = lf.status()
		return st
	}
	probed := &cachedStatus{}
	mux.HandleFunc(agent.PathReady, func(w http.ResponseWriter, r *http.Request) {
		if s := probed.get(func() agent.Status { return status(r) }); !s.Ready {
			http.Error(w, s.Detail, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle(agent.PathStatus, authorized(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status(r))
	}))
	mux.Handle("GET "+agent.PathAgent, authorized(up.get))
	mux.Handle("PUT "+agent.PathAgent, authorized(up.put))
	if actor, ok := e.(agent.Actor); ok {
		mux.Handle("POST "+agent.PathAction+"{action}", authorized(up.hold(func(w http.ResponseWriter, r *http.Request) { act(actor, w, r) })))
		if s, ok := e.(agent.Streamer); ok {
			mux.Handle("POST "+agent.PathDump, authorized(up.hold(func(w http.ResponseWriter, r *http.Request) { dump(s, w, r) })))
			mux.Handle("POST "+agent.PathLoad, authorized(up.hold(func(w http.ResponseWriter, r *http.Request) { load(s, w, r) })))
		}
		if b, ok := e.(agent.BaseBackuper); ok {
			mux.Handle("POST "+agent.PathBase, authorized(up.hold(func(w http.ResponseWriter, r *http.Request) { baseBackup(b, w, r) })))
		}
	}
	return mux
}

// authorized serves only clients whose verified certificate names one of agent.ClientNames.
func authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isClient(clientIdentity(r)) {
			http.Error(w, "a client certificate of this instance is required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

func dump(s agent.Streamer, w http.ResponseWriter, r *http.Request) {
	streamOut(w, r, "dump", func() (http.Header, error) { return nil, s.Dump(r.Context(), w) })
}

// baseBackup streams a base backup as dump streams a dump, its BaseBackupInfo in a trailer.
func baseBackup(b agent.BaseBackuper, w http.ResponseWriter, r *http.Request) {
	streamOut(w, r, "base backup", func() (http.Header, error) {
		info, err := b.BaseBackup(r.Context(), w)
		j, _ := json.Marshal(info)
		return http.Header{agent.TrailerBaseBackup: {string(j)}}, err
	})
}

// streamOut answers 200 at once and streams what write writes; the trailers say how it ended
// (agent.TrailerResult) and carry what write returns besides, when it succeeded.
func streamOut(w http.ResponseWriter, r *http.Request, what string, write func() (http.Header, error)) {
	log.FromContext(r.Context()).Info(what + " requested")
	w.Header().Set("Trailer", agent.TrailerResult+", "+agent.TrailerBaseBackup)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	result := "ok"
	trailers, err := write()
	if err != nil {
		log.FromContext(r.Context()).Error(err, what+" failed")
		result = strings.Join(strings.Fields(err.Error()), " ") // a header value is one line
		trailers = nil
	}
	for k, v := range trailers {
		w.Header()[k] = v
	}
	w.Header().Set(agent.TrailerResult, result)
}

func load(s agent.Streamer, w http.ResponseWriter, r *http.Request) {
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

func act(a agent.Actor, w http.ResponseWriter, r *http.Request) {
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
