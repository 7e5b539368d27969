package agent

import (
	"flag"
	"fmt"
	"reflect"
	"strconv"
)

// An engine's agent arguments are one struct, rendered into the pod's container arguments by the
// engine's Render (Flags) and parsed by the agent (BindFlags) from the same field tags, so the two
// sides cannot disagree on a flag's name or type. A field's tag `flag:"name"` names its flag and
// `usage:"…"` explains it. Fields are strings, bools, ints and *ints; Flags renders, in field
// order, a non-empty string, a non-zero int, a non-nil *int (which can say 0 where the default is
// not) and a true bool (as "--name").

// Flags renders args, a struct or a pointer to one, as command-line arguments.
func Flags(args any) []string {
	v := reflect.Indirect(reflect.ValueOf(args))
	var out []string
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("flag")
		if name == "" {
			continue
		}
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			if f.String() != "" {
				out = append(out, "--"+name+"="+f.String())
			}
		case reflect.Int:
			if f.Int() != 0 {
				out = append(out, "--"+name+"="+strconv.FormatInt(f.Int(), 10))
			}
		case reflect.Bool:
			if f.Bool() {
				out = append(out, "--"+name)
			}
		case reflect.Pointer:
			if !f.IsNil() {
				out = append(out, "--"+name+"="+strconv.FormatInt(f.Elem().Int(), 10))
			}
		default:
			panic(fmt.Sprintf("agent arguments: field %s has an unsupported type %s", v.Type().Field(i).Name, f.Type()))
		}
	}
	return out
}

// BindFlags registers the fields of args, a pointer to a struct holding the defaults, on fs:
// parsing fs sets them.
func BindFlags(fs *flag.FlagSet, args any) {
	v := reflect.ValueOf(args).Elem()
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		name := sf.Tag.Get("flag")
		if name == "" {
			continue
		}
		usage := sf.Tag.Get("usage")
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			fs.StringVar(f.Addr().Interface().(*string), name, f.String(), usage)
		case reflect.Int:
			fs.IntVar(f.Addr().Interface().(*int), name, int(f.Int()), usage)
		case reflect.Bool:
			fs.BoolVar(f.Addr().Interface().(*bool), name, f.Bool(), usage)
		case reflect.Pointer:
			fs.Var(intPointer{f.Addr().Interface().(**int)}, name, usage)
		default:
			panic(fmt.Sprintf("agent arguments: field %s has an unsupported type %s", sf.Name, f.Type()))
		}
	}
}

// intPointer is a flag that sets a *int field (nil until given).
type intPointer struct{ p **int }

func (i intPointer) String() string {
	if i.p == nil || *i.p == nil {
		return ""
	}
	return strconv.Itoa(**i.p)
}

func (i intPointer) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*i.p = &n
	return nil
}

// Plugin is an engine's agent side as the manager binary compiles it in: its argument struct and
// how to build the agent from it once parsed.
type Plugin struct {
	// Args returns a pointer to a new argument struct holding the defaults.
	Args func() any
	// New builds the agent from the parsed arguments and where it serves.
	New func(args any, l Listen) (Engine, error)
}

// NewPlugin is the Plugin of an agent whose arguments are an A.
func NewPlugin[A any](defaults func() A, build func(A, Listen) (Engine, error)) Plugin {
	return Plugin{
		Args: func() any { a := defaults(); return &a },
		New:  func(args any, l Listen) (Engine, error) { return build(*args.(*A), l) },
	}
}

// BindListen registers the flags every agent takes: where it serves, and its certificate.
func BindListen(fs *flag.FlagSet, l *Listen) {
	fs.StringVar(&l.Addr, "http-address", ":8000", "address of the agent's HTTPS endpoints (/healthz, /readyz, /status, /action, /stream)")
	fs.StringVar(&l.MetricsAddr, FlagMetricsAddress, DefaultMetricsAddress(),
		"address of the agent's Prometheus endpoint ("+PathMetrics+", HTTPS with the scrape token), default $"+EnvMetricsAddress+" if set; none when empty")
	fs.StringVar(&l.TLSDir, FlagTLSDir, "", "directory of the agents' certificate, key and the instance's CA (tls.crt, tls.key, ca.crt)")
}
