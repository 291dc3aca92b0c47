package testutil

import (
	"testing"
	"time"
)

// WaitTimeout is how long Eventually waits: long enough for a real Vault or
// agent on a loaded 2-core machine, short of go test's own timeout.
const WaitTimeout = 30 * time.Second

// Eventually polls cond until it returns true, and fails the test with
// "timed out after 30s waiting for <what>" when it never does. It polls
// every millisecond at first and backs off to 20ms, so a quick condition
// costs little and a slow one (an HTTP round trip) does not spin.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWithin(tb, WaitTimeout, what, cond)
}

// EventuallyWithin is Eventually with its own timeout.
func EventuallyWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
