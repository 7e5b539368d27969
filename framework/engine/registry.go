package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// Plugin is one engine as a manager binary compiles it in, registered once: its controller side
// (Engine) and its agent side ("manager agent <name>": the argument struct that the Engine's
// Render fills and the agent parses, and how to build the agent from it).
type Plugin struct {
	Engine Engine
	Agent  fwagent.Plugin
}

// Engines are the plugins' controller sides.
func Engines(plugins []Plugin) []Engine {
	out := make([]Engine, len(plugins))
	for i, p := range plugins {
		out[i] = p.Engine
	}
	return out
}

// Registry holds the engines compiled into a manager, by name.
type Registry struct {
	engines map[string]Engine
}

// NewRegistry returns a registry of the given engines. Two engines with one name is a programming
// error and panics.
func NewRegistry(engines ...Engine) *Registry {
	r := &Registry{engines: map[string]Engine{}}
	for _, e := range engines {
		if _, dup := r.engines[e.Name()]; dup {
			panic(fmt.Sprintf("engine %q registered twice", e.Name()))
		}
		r.engines[e.Name()] = e
	}
	return r
}

// ByName indexes engines by name, for the controllers that serve every engine (bindings, backups,
// the webhook).
func ByName(engines []Engine) map[string]Engine {
	m := make(map[string]Engine, len(engines))
	for _, e := range engines {
		m[e.Name()] = e
	}
	return m
}

// Names returns the registered engine names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.engines))
	for n := range r.engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns the engine with this name.
func (r *Registry) Get(name string) (Engine, bool) {
	e, ok := r.engines[name]
	return e, ok
}

// Select returns the engines named in names (all of them when names is empty), or an error naming
// the unknown ones and the known ones.
func (r *Registry) Select(names []string) ([]Engine, error) {
	if len(names) == 0 {
		names = r.Names()
	}
	var out []Engine
	var unknown []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		e, ok := r.engines[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown engine(s) %s: this manager knows %s",
			strings.Join(unknown, ", "), describe(r.Names()))
	}
	return out, nil
}

func describe(names []string) string {
	if len(names) == 0 {
		return "no engines"
	}
	return strings.Join(names, ", ")
}
