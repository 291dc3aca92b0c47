package rotation

import (
	"time"

	"k8s.io/utils/clock"
)

// ArmAt sets timer to fire at the instant at on clk and reports whether it
// did; false, with the timer stopped, means at has passed and the caller
// should act now. A timer takes a duration, counted from the clock's time
// when it is set, so the wait is read from the clock just before, and the
// timer set again if the clock moved meanwhile (a pause, or a test
// stepping a fake clock between the read and the set): either would make
// it fire late by that much, and a stepped test clock would never fire it
// at the step that made it due.
func ArmAt(clk clock.Clock, timer clock.Timer, at time.Time) bool {
	for {
		now := clk.Now()
		wait := at.Sub(now)
		if wait <= 0 {
			StopTimer(timer)
			return false
		}
		timer.Reset(wait)
		if clk.Since(now) < time.Millisecond {
			return true
		}
		StopTimer(timer)
	}
}

// StopTimer stops timer and drains a fire it already sent, so the next
// Reset starts clean.
func StopTimer(timer clock.Timer) {
	if !timer.Stop() {
		select {
		case <-timer.C():
		default:
		}
	}
}
