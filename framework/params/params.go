// Package params validates an instance's spec.parameters against an engine's allow-list of typed
// parameters, and renders them as "name = value" configuration lines. Every engine has the same
// need; only the list differs.
package params

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Kind checks one parameter's value; it returns "" when the value is valid, else what is wrong.
type Kind func(value string) string

// Int accepts integers from min to max.
func Int(min, max int64) Kind {
	return func(v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "must be an integer"
		}
		if n < min || n > max {
			return fmt.Sprintf("must be between %d and %d", min, max)
		}
		return ""
	}
}

// Float accepts a non-negative decimal number.
func Float() Kind {
	return func(v string) string {
		// Plain decimals only: both engines' parsers take them, and NaN or 1e3 would surprise one.
		if !decimal.MatchString(v) {
			return "must be a non-negative decimal number such as 0.4"
		}
		return ""
	}
}

// Bool accepts true or false.
func Bool() Kind {
	return func(v string) string {
		if _, err := strconv.ParseBool(v); err != nil {
			return "must be true or false"
		}
		return ""
	}
}

// Enum accepts one of the given values.
func Enum(values ...string) Kind {
	return func(v string) string {
		if !slices.Contains(values, v) {
			return "must be one of: " + strings.Join(values, ", ")
		}
		return ""
	}
}

var decimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

var memory = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)?$`)

// Memory accepts a size as PostgreSQL and RabbitMQ write it: a number with an optional kB, MB, GB or TB.
func Memory() Kind {
	return func(v string) string {
		if !memory.MatchString(v) {
			return "must be a size such as 128MB or 4GB (units kB, MB, GB, TB)"
		}
		return ""
	}
}

// Spec is an engine's allow-list.
type Spec struct {
	// Allowed parameters and their kinds.
	Allowed map[string]Kind
	// Owned parameters the operator sets itself, with the reason a user cannot. A name ending in
	// "." owns every parameter it prefixes.
	Owned map[string]string
	// Restart lists the allowed parameters that take effect only when the server restarts; the
	// others are applied by a reload.
	Restart []string
}

// RestartDigest summarises the values of the restart-only parameters ("" when none is set).
// Engines put it on the pod template, so that changing one rolls the pods (one at a time, in
// the engine's order) while changing any other parameter only reloads.
func (s Spec) RestartDigest(params map[string]string) string {
	h := sha256.New()
	set := false
	for _, k := range sortedKeys(params) {
		if slices.Contains(s.Restart, k) {
			fmt.Fprintf(h, "%s=%s\n", k, params[k])
			set = true
		}
	}
	if !set {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Validate checks every parameter, in name order, so the messages are stable.
func (s Spec) Validate(params map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(params) {
		v := params[k]
		if why, ok := s.owned(k); ok {
			errs = append(errs, field.Forbidden(path.Key(k), fmt.Sprintf("%s is set by the operator: %s", k, why)))
			continue
		}
		kind, ok := s.Allowed[k]
		if !ok {
			errs = append(errs, field.NotSupported(path.Key(k), k, sortedKeys(s.Allowed)))
			continue
		}
		if msg := kind(v); msg != "" {
			errs = append(errs, field.Invalid(path.Key(k), v, msg))
		}
	}
	return errs
}

func (s Spec) owned(k string) (string, bool) {
	if why, ok := s.Owned[k]; ok {
		return why, true
	}
	for prefix, why := range s.Owned {
		if strings.HasSuffix(prefix, ".") && strings.HasPrefix(k, prefix) {
			return why, true
		}
	}
	return "", false
}

// Lines renders parameters as "name = 'value'" lines in name order, quoting values as PostgreSQL's
// configuration files do (a quote inside is doubled).
func Lines(params map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(params) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(params[k], "'", "''"))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
