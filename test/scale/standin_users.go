package scale

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	pgagent "github.com/datafleet-dev/datafleet/engines/postgres/agent"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// userStore is the stand-in's record of the users each instance holds: what the operator made
// through RabbitMQ's management API or a PostgreSQL primary's agent, and did not drop. The fault
// test reads it to find users left behind or made twice.
type userStore struct {
	mu         sync.Mutex
	byInstance map[types.NamespacedName]*instanceUsers
}

// instanceUsers are one instance's: each user's (and vhost's, and permission's) last body.
type instanceUsers struct {
	users, vhosts, permissions map[string][]byte
}

func (u *userStore) of(key types.NamespacedName) *instanceUsers {
	if u.byInstance == nil {
		u.byInstance = map[types.NamespacedName]*instanceUsers{}
	}
	iu, ok := u.byInstance[key]
	if !ok {
		iu = &instanceUsers{users: map[string][]byte{}, vhosts: map[string][]byte{}, permissions: map[string][]byte{}}
		u.byInstance[key] = iu
	}
	return iu
}

// Users are the users the instance holds, sorted.
func (u *userStore) Users(key types.NamespacedName) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for name := range u.of(key).users {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// routeUsers serves RabbitMQ's user, vhost and permission endpoints on mux.
func (s *standIn) routeUsers(mux *http.ServeMux) {
	table := func(iu *instanceUsers, kind string) map[string][]byte {
		switch kind {
		case "users":
			return iu.users
		case "vhosts":
			return iu.vhosts
		}
		return iu.permissions
	}
	item := func(r *http.Request) (string, string) {
		kind := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/"), "/")[0]
		if kind == "permissions" {
			return kind, r.PathValue("vhost") + "\x00" + r.PathValue("user")
		}
		return kind, r.PathValue("name")
	}
	for _, p := range []string{"/api/users/{name}", "/api/vhosts/{name}", "/api/permissions/{vhost}/{user}"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			s.withUsers(w, r, func(iu *instanceUsers) {
				kind, key := item(r)
				b, ok := table(iu, kind)[key]
				if !ok {
					http.Error(w, `{"error":"Object Not Found"}`, http.StatusNotFound)
					return
				}
				_, _ = w.Write(b)
			})
		})
		mux.HandleFunc("PUT "+p, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.withUsers(w, r, func(iu *instanceUsers) {
				kind, key := item(r)
				table(iu, kind)[key] = body
				w.WriteHeader(http.StatusCreated)
			})
		})
		mux.HandleFunc("DELETE "+p, func(w http.ResponseWriter, r *http.Request) {
			s.withUsers(w, r, func(iu *instanceUsers) {
				kind, key := item(r)
				if _, ok := table(iu, kind)[key]; !ok {
					http.Error(w, `{"error":"Object Not Found"}`, http.StatusNotFound)
					return
				}
				delete(table(iu, kind), key)
				w.WriteHeader(http.StatusNoContent)
			})
		})
	}
	mux.HandleFunc("GET /api/users", func(w http.ResponseWriter, r *http.Request) {
		s.withUsers(w, r, func(iu *instanceUsers) {
			type user struct {
				Name string `json:"name"`
			}
			out := []user{}
			for name := range iu.users {
				out = append(out, user{Name: name})
			}
			_ = json.NewEncoder(w).Encode(out)
		})
	})
}

// agentUsers plays a PostgreSQL primary's agent's ensure-user and drop-users actions.
func (s *standIn) agentUsers(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.withUsers(w, r, func(iu *instanceUsers) {
		switch r.PathValue("name") {
		case pgagent.ActionEnsureUser:
			iu.users[r.PostForm.Get(pgagent.ParamUser)] = []byte(r.PostForm.Get(pgagent.ParamRole))
		case pgagent.ActionDropUsers:
			stem, keep := r.PostForm.Get(pgagent.ParamStem), r.PostForm[pgagent.ParamKeep]
			for name := range iu.users {
				if names.IsUserOf(stem, name) && !slices.Contains(keep, name) {
					delete(iu.users, name)
				}
			}
		}
		_, _ = w.Write([]byte("done"))
	})
}

// withUsers runs do with the users of the instance of the pod dialled, locked.
func (s *standIn) withUsers(w http.ResponseWriter, r *http.Request, do func(*instanceUsers)) {
	ctx := r.Context()
	_, inst, err := s.podAt(ctx, ctx.Value(localAddrKey{}).(net.Addr))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s.users.mu.Lock()
	defer s.users.mu.Unlock()
	do(s.users.of(types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}))
}
