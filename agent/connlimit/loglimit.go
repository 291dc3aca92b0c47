package connlimit

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// LogLimiter lets through at most one log line per Every, so a flood of
// refusals costs a counter, not a flood of log lines.
type LogLimiter struct {
	Every time.Duration // default 10s
	Clock clock.PassiveClock

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged now and, if so, how many were
// held back since the last one.
func (r *LogLimiter) Allow() (ok bool, suppressed int) {
	every, clk := r.Every, r.Clock
	if every <= 0 {
		every = 10 * time.Second
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	now := clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < every {
		r.suppressed++
		return false, 0
	}
	r.last, suppressed, r.suppressed = now, r.suppressed, 0
	return true, suppressed
}
