package controllers

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule is a cron expression in a time zone.
type schedule struct {
	cron.Schedule
}

func parseSchedule(expr, zone string) (schedule, error) {
	loc := time.UTC
	if zone != "" {
		l, err := time.LoadLocation(zone)
		if err != nil {
			return schedule{}, fmt.Errorf("timeZone %q is not an IANA time zone: %w", zone, err)
		}
		loc = l
	}
	s, err := cron.ParseStandard("CRON_TZ=" + loc.String() + " " + expr)
	if err != nil {
		return schedule{}, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return schedule{s}, nil
}

// due returns the latest slot after last that is not after now (zero if none), and the next slot
// after now. Missed slots before the latest are skipped, as a CronJob does.
func (s schedule) due(last, now time.Time) (slot, next time.Time) {
	for t := s.Next(last); !t.After(now); t = s.Next(t) {
		slot = t
	}
	return slot, s.Next(now)
}
