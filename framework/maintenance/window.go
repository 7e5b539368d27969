// Package maintenance reads an instance's maintenance window: when the operator may restart its
// pods for a change the spec did not ask for. Pure: the caller gives the time.
package maintenance

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// Days are the CRD's day names, by time.Weekday.
var Days = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Window is a weekly window, parsed.
type Window struct {
	days     [7]bool
	start    time.Duration // after midnight
	duration time.Duration
	loc      *time.Location
}

// Parse checks a window as the CRD cannot (the time zone, the duration's syntax) and parses it.
func Parse(w v1alpha1.MaintenanceWindow) (*Window, error) {
	p := &Window{duration: w.Duration.Duration}
	if p.duration < 30*time.Minute || p.duration > 24*time.Hour {
		return nil, fmt.Errorf("duration %s must be between 30m and 24h", p.duration)
	}
	var h, m int
	if _, err := fmt.Sscanf(w.StartTime, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 || len(w.StartTime) != 5 {
		return nil, fmt.Errorf("startTime %q is not HH:MM", w.StartTime)
	}
	p.start = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	loc, err := time.LoadLocation(w.TimeZone) // "" is UTC
	if err != nil {
		return nil, fmt.Errorf("timeZone %q: %v", w.TimeZone, err)
	}
	p.loc = loc
	for _, d := range w.Days {
		i := slices.Index(Days, d)
		if i < 0 {
			return nil, fmt.Errorf("day %q is not one of %v", d, Days)
		}
		p.days[i] = true
	}
	if len(w.Days) == 0 {
		p.days = [7]bool{true, true, true, true, true, true, true}
	}
	return p, nil
}

// Validate is Parse's error as a field error, for admission and the reconciler alike.
func Validate(w *v1alpha1.MaintenanceWindow, path *field.Path) field.ErrorList {
	if w == nil {
		return nil
	}
	if _, err := Parse(*w); err != nil {
		return field.ErrorList{field.Invalid(path, *w, err.Error())}
	}
	return nil
}

// opening is when the window opens on the day of t in the window's zone (daylight saving time
// moves the wall clock, not the opening: 02:30 on a day that skips it is 03:30).
func (w *Window) opening(t time.Time, daysLater int) time.Time {
	t = t.In(w.loc)
	midnight := time.Date(t.Year(), t.Month(), t.Day()+daysLater, 0, 0, 0, 0, w.loc)
	return time.Date(midnight.Year(), midnight.Month(), midnight.Day(), int(w.start/time.Hour), int(w.start%time.Hour/time.Minute), 0, 0, w.loc)
}

// Open reports whether the window is open at t: it opened on an allowed day, today or yesterday
// (a window may run past midnight), and has not closed yet.
func (w *Window) Open(t time.Time) bool {
	for _, back := range []int{0, -1} {
		o := w.opening(t, back)
		if w.days[o.Weekday()] && !t.Before(o) && t.Before(o.Add(w.duration)) {
			return true
		}
	}
	return false
}

// Next is when the window next opens after t.
func (w *Window) Next(t time.Time) time.Time {
	for d := 0; d <= 7; d++ {
		if o := w.opening(t, d); w.days[o.Weekday()] && o.After(t) {
			return o
		}
	}
	return time.Time{} // unreachable: some day is allowed
}
