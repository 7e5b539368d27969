package instance

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// The window starts at the oldest base backup; its end follows the archive forward only, once a
// full archive timeout has passed since the end it shows, and never back (a new primary has
// archived nothing yet).
func TestRecoverableWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(t0.Add(d)); return &m }
	archived := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	window := func(from, to time.Duration) *v1alpha1.RecoverableWindow {
		return &v1alpha1.RecoverableWindow{From: *at(from), To: *at(to)}
	}
	for _, c := range []struct {
		name     string
		prev     *v1alpha1.RecoverableWindow
		base     *metav1.Time
		archived *time.Time
		now      time.Duration
		want     *v1alpha1.RecoverableWindow
	}{
		{"no physical backup: no window", window(0, time.Hour), nil, archived(2 * time.Hour), 2 * time.Hour, nil},
		{"a first backup, nothing archived since", nil, at(0), nil, time.Second, window(0, 0)},
		{"a first backup, archived since", nil, at(0), archived(10 * time.Second), 10 * time.Second, window(0, 10*time.Second)},
		{"archived less than a timeout further, soon after: unchanged", window(0, time.Minute), at(0), archived(time.Minute + 59*time.Second), time.Minute + 59*time.Second, window(0, time.Minute)},
		{"archived a timeout further: moves", window(0, time.Minute), at(0), archived(2*time.Minute + 500*time.Millisecond), 2 * time.Minute, window(0, 2*time.Minute)},
		{"archived a little further, a timeout ago (a quiet database): moves", window(0, time.Minute), at(0), archived(time.Minute + 5*time.Second), 2*time.Minute + time.Second, window(0, time.Minute+5*time.Second)},
		{"a new primary that archived nothing: kept", window(0, time.Minute), at(0), nil, time.Hour, window(0, time.Minute)},
		{"an older archived time: kept", window(0, time.Minute), at(0), archived(30 * time.Second), time.Hour, window(0, time.Minute)},
		{"the oldest backup pruned: from and to move", window(0, time.Minute), at(50 * time.Second), archived(90 * time.Second), 90 * time.Second, window(50*time.Second, 90*time.Second)},
		{"a backup after the archive's end: to is at least from", window(0, time.Minute), at(5 * time.Minute), nil, 5 * time.Minute, window(5*time.Minute, 5*time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := recoverableWindow(c.prev, c.base, c.archived, time.Minute, t0.Add(c.now))
			if (got == nil) != (c.want == nil) || got != nil && (!got.From.Equal(&c.want.From) || !got.To.Equal(&c.want.To)) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
