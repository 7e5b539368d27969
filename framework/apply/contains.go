package apply

import (
	"encoding/json"
	"reflect"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Contains reports whether live holds every field set in want: maps may have extra keys (server
// defaults, other field owners), lists must match element by element, and nil in want means
// "don't care". Numbers are compared by value and quantity strings semantically ("1Gi" and
// "1073741824" are equal), because the API server may normalise them.
func Contains(live, want any) bool {
	if want == nil {
		return true
	}
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return len(w) == 0 && live == nil
		}
		for k, wv := range w {
			lv, present := l[k]
			if !present {
				if isEmpty(wv) {
					continue
				}
				return false
			}
			if !Contains(lv, wv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok {
			return len(w) == 0 && live == nil
		}
		if len(l) != len(w) {
			return false
		}
		for i := range w {
			if !Contains(l[i], w[i]) {
				return false
			}
		}
		return true
	case string:
		if l, ok := live.(string); ok {
			return l == w || sameQuantity(l, w)
		}
		return false
	default:
		if wn, ok := number(want); ok {
			ln, ok := number(live)
			return ok && ln == wn
		}
		return reflect.DeepEqual(live, want)
	}
}

// isEmpty is true for values the API server drops on the way in (empty maps and lists, false,
// zero and ""), which therefore never appear in the live object.
func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, x := range t {
			if !isEmpty(x) {
				return false
			}
		}
		return true
	case []any:
		return len(t) == 0
	case string:
		return t == ""
	case bool:
		return !t
	default:
		if n, ok := number(v); ok {
			return n == 0
		}
		return v == nil
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func sameQuantity(a, b string) bool {
	qa, err := resource.ParseQuantity(a)
	if err != nil {
		return false
	}
	qb, err := resource.ParseQuantity(b)
	if err != nil {
		return false
	}
	return qa.Cmp(qb) == 0
}
