// Package schedule is a BackupPlan's cron expression in its time zone: parsed and checked to fire
// (by the webhook at admission and again by the plan controller), and the slot that is due.
package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a cron expression in a time zone that fires.
type Schedule struct {
	s cron.Schedule
}

// Parse reads a standard five-field cron expression in the IANA time zone (UTC when empty) and
// refuses one that never fires after now: robfig/cron looks five years ahead and answers the zero
// time when nothing matches (`0 0 30 2 *`), which every later step would take for a time. Every
// expression that can match at all does so within four years (29 February), so five is the
// horizon.
func Parse(expr, zone string, now time.Time) (Schedule, error) {
	loc := time.UTC
	if zone != "" {
		l, err := time.LoadLocation(zone)
		if err != nil {
			return Schedule{}, fmt.Errorf("timeZone %q is not an IANA time zone: %w", zone, err)
		}
		loc = l
	}
	s, err := cron.ParseStandard("CRON_TZ=" + loc.String() + " " + expr)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", expr, err)
	}
	if s.Next(now).IsZero() {
		return Schedule{}, fmt.Errorf("schedule %q never fires: no date matches it in the next five years (a day that month does not have?)", expr)
	}
	return Schedule{s}, nil
}

// Next is the first slot after t.
func (s Schedule) Next(t time.Time) time.Time { return s.s.Next(t) }

// Due returns the latest slot after last that is not after now (zero if none), and the next slot
// after now. Missed slots before the latest are skipped, as a CronJob does. The latest slot is
// found by bisection on the time (Next is monotonic), so a plan suspended for a year with a slot
// every minute costs about 35 steps, not half a million.
func (s Schedule) Due(last, now time.Time) (slot, next time.Time) {
	next = s.s.Next(now)
	if first := s.s.Next(last); first.IsZero() || first.After(now) {
		return time.Time{}, next
	}
	// Invariant: Next(lo) <= now < Next(hi) (Next(now) is after now, or zero for never).
	lo, hi := last, now
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if t := s.s.Next(mid); !t.IsZero() && !t.After(now) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s.s.Next(lo), next
}
