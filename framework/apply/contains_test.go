package apply

import "testing"

func TestContains(t *testing.T) {
	live := map[string]any{
		"metadata": map[string]any{"name": "x", "labels": map[string]any{"a": "1", "b": "2"}, "uid": "u"},
		"spec": map[string]any{
			"replicas": int64(3),
			"ports":    []any{map[string]any{"port": int64(5432), "protocol": "TCP"}},
			"size":     "1Gi",
		},
	}
	for _, tc := range []struct {
		name string
		want map[string]any
		ok   bool
	}{
		{"subset", map[string]any{"metadata": map[string]any{"labels": map[string]any{"a": "1"}}}, true},
		{"server defaults ignored", map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": int64(5432)}}}}, true},
		{"number types", map[string]any{"spec": map[string]any{"replicas": float64(3)}}, true},
		{"quantity forms", map[string]any{"spec": map[string]any{"size": "1073741824"}}, true},
		{"nil is don't care", map[string]any{"metadata": map[string]any{"creationTimestamp": nil}}, true},
		{"empty absent", map[string]any{"spec": map[string]any{"paused": false, "extra": map[string]any{}}}, true},
		{"changed value", map[string]any{"spec": map[string]any{"replicas": int64(1)}}, false},
		{"missing key", map[string]any{"metadata": map[string]any{"labels": map[string]any{"c": "3"}}}, false},
		{"list length", map[string]any{"spec": map[string]any{"ports": []any{}}}, false},
		{"missing true", map[string]any{"spec": map[string]any{"paused": true}}, false},
	} {
		if got := Contains(live, tc.want); got != tc.ok {
			t.Errorf("%s: Contains = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
