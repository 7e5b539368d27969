package maintenance

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

func window(t *testing.T, days []string, start, duration, zone string) *Window {
	t.Helper()
	d, err := time.ParseDuration(duration)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Parse(v1alpha1.MaintenanceWindow{Days: days, StartTime: start, Duration: metav1.Duration{Duration: d}, TimeZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenAndNext(t *testing.T) {
	// Saturdays 23:00-01:00 in Berlin (UTC+1 in winter, UTC+2 in summer).
	sat := window(t, []string{"Sat"}, "23:00", "2h", "Europe/Berlin")
	for _, c := range []struct {
		now  string
		open bool
		next string
	}{
		{"2026-12-05T21:59:00Z", false, "2026-12-05T22:00:00Z"}, // Saturday 22:59 in Berlin
		{"2026-12-05T22:00:00Z", true, "2026-12-12T22:00:00Z"},  // it opens
		{"2026-12-05T23:59:00Z", true, "2026-12-12T22:00:00Z"},  // Sunday 00:59, still open past midnight
		{"2026-12-06T00:00:00Z", false, "2026-12-12T22:00:00Z"}, // Sunday 01:00: closed
		{"2026-12-02T12:00:00Z", false, "2026-12-05T22:00:00Z"}, // a Wednesday
		{"2026-07-04T21:30:00Z", true, "2026-07-11T21:00:00Z"},  // summer: 23:30 in Berlin
	} {
		now := at(t, c.now)
		if got := sat.Open(now); got != c.open {
			t.Errorf("Open(%s) = %v, want %v", c.now, got, c.open)
		}
		if got := sat.Next(now); !got.Equal(at(t, c.next)) {
			t.Errorf("Next(%s) = %s, want %s", c.now, got.UTC().Format(time.RFC3339), c.next)
		}
	}
	// Every day, 02:00 UTC for 24 hours: always open.
	always := window(t, nil, "02:00", "24h", "")
	for _, s := range []string{"2026-12-02T01:59:59Z", "2026-12-02T02:00:00Z", "2026-12-06T13:00:00Z"} {
		if !always.Open(at(t, s)) {
			t.Errorf("a 24h daily window is closed at %s", s)
		}
	}
}

func TestParseRefusesWhatTheSchemaCannotCheck(t *testing.T) {
	for _, w := range []v1alpha1.MaintenanceWindow{
		{StartTime: "02:00", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"},
		{StartTime: "2:00", Duration: metav1.Duration{Duration: time.Hour}},
		{StartTime: "02:00", Duration: metav1.Duration{Duration: time.Minute}},
		{StartTime: "02:00", Duration: metav1.Duration{Duration: time.Hour}, Days: []string{"Someday"}},
	} {
		if _, err := Parse(w); err == nil {
			t.Errorf("%+v parsed", w)
		}
	}
}
