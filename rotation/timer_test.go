package rotation_test

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/rotation"
)

// steppingClock is a fake clock stepped by step right after its first
// Now, as a test stepping its clock between a timer's read of the time
// and its Reset would.
type steppingClock struct {
	*clocktesting.FakeClock
	step  time.Duration
	calls int
}

func (c *steppingClock) Now() time.Time {
	now := c.FakeClock.Now()
	if c.calls++; c.calls == 1 {
		c.FakeClock.Step(c.step)
	}
	return now
}

// TestArmAtFiresAtTheInstantThoughTheClockMovedWhileArming: a timer armed
// for +100 ms fires when the clock reaches +100 ms, even if the clock
// moved 50 ms between the read and the set (it would fire at +150 ms).
func TestArmAtFiresAtTheInstantThoughTheClockMovedWhileArming(t *testing.T) {
	fake := clocktesting.NewFakeClock(t0)
	clk := &steppingClock{FakeClock: fake, step: 50 * time.Millisecond}
	timer := fake.NewTimer(time.Hour)
	at := t0.Add(100 * time.Millisecond)
	if !rotation.ArmAt(clk, timer, at) {
		t.Fatal("ArmAt: the instant has passed, want it armed")
	}
	fake.Step(at.Sub(fake.Now())) // to exactly +100 ms
	select {
	case <-timer.C():
	default:
		t.Fatalf("the timer did not fire at +100ms (the clock moved 50 ms while it was armed)")
	}
	// An instant already past is not armed.
	if rotation.ArmAt(fake, timer, t0) {
		t.Fatal("ArmAt armed a timer for an instant already past")
	}
}
