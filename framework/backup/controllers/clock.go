package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
)

// now is c's time; a nil c is the wall clock (tests inject theirs, as for the other reconcilers).
func now(c clock.PassiveClock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}

// stamp is c's time as status records it: to the second.
func stamp(c clock.PassiveClock) *metav1.Time {
	t := metav1.NewTime(now(c).Truncate(time.Second))
	return &t
}
