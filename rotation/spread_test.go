package rotation_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

func TestSpreadDelay(t *testing.T) {
	tests := []struct {
		name         string
		window, left time.Duration
		i, n         int
		phase        float64
		want         time.Duration
	}{
		{name: "first slot", window: 10 * time.Second, left: time.Hour, i: 0, n: 200, phase: 0.5, want: 25 * time.Millisecond},
		{name: "last slot", window: 10 * time.Second, left: time.Hour, i: 199, n: 200, phase: 0.5, want: 9975 * time.Millisecond},
		{name: "window cut to half the remaining life", window: 10 * time.Second, left: 6 * time.Second, i: 199, n: 200, phase: 0.5, want: 2992500 * time.Microsecond},
		{name: "expired goes at once", window: 10 * time.Second, left: -time.Second, i: 199, n: 200, phase: 0.5},
		{name: "no window", window: 0, left: time.Hour, i: 199, n: 200, phase: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rotation.SpreadDelay(tt.window, tt.left, tt.i, tt.n, tt.phase); got != tt.want {
				t.Fatalf("SpreadDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

// spreadDues tracks n keys valid for v (and extra), spreads them over
// window on a scheduler that is not running, and returns every key's due
// time as an offset from t0.
func spreadDues(t *testing.T, policy rotation.Policy, window time.Duration, n int, v rotation.Validity, extra map[string]rotation.Validity) map[string]time.Duration {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	s := rotation.New(rotation.Config{Renewer: &fakeRenewer{clock: clk}, Clock: clk, Rand: half, Policy: policy})
	for i := range n {
		s.Track(fmt.Sprintf("k%03d", i), v)
	}
	for k, v := range extra {
		s.Track(k, v)
	}
	if got, want := s.Spread(window), n+len(extra); got != want {
		t.Fatalf("Spread scheduled %d keys, want %d", got, want)
	}
	dues := map[string]time.Duration{}
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		due, _ := s.Due(k)
		dues[k] = due.Sub(t0)
	}
	for k := range extra {
		due, _ := s.Due(k)
		dues[k] = due.Sub(t0)
	}
	return dues
}

// perSecond counts the dues in each second from t0.
func perSecond(dues map[string]time.Duration) map[time.Duration]int {
	out := map[time.Duration]int{}
	for _, d := range dues {
		out[d.Truncate(time.Second)]++
	}
	return out
}

// TestSchedulerSpreadPacesEveryKeyOverTheWindow: 200 keys spread over 10 s
// come due evenly, 20 a second (the slot grid), and use the whole window;
// none before now or at or after its end, the first at the drawn phase.
func TestSchedulerSpreadPacesEveryKeyOverTheWindow(t *testing.T) {
	v := rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	dues := spreadDues(t, rotation.DefaultPolicy, 10*time.Second, 200, v, nil)
	last, first := time.Duration(0), time.Hour
	for k, d := range dues {
		if d < 0 || d >= 10*time.Second {
			t.Fatalf("%s due at %v, want within [0, 10s)", k, d)
		}
		last, first = max(last, d), min(first, d)
	}
	// The phase drawn from Rand (0.5) puts the first slot half a slot in:
	// agents drawing other phases interleave instead of all starting at 0.
	if first != 25*time.Millisecond {
		t.Errorf("the first key is due at %v, want 25ms (phase 0.5 of a 50ms slot)", first)
	}
	for sec, n := range perSecond(dues) {
		if n > 20 {
			t.Errorf("%d keys due in the second from %v, want at most 20 (200 over 10s)", n, sec)
		}
	}
	if last < 9*time.Second {
		t.Fatalf("the last key is due at %v: the spread does not use its 10s window", last)
	}
}

// TestSchedulerSpreadNeverPassesHalfTheRemainingLife: keys with 6 s left
// (due at 90% of life by their policy) spread over 10 s all come due within
// 3 s, still paced rather than at one instant; and a key with 2 s left
// among 200 with an hour left goes first, whatever its name.
func TestSchedulerSpreadNeverPassesHalfTheRemainingLife(t *testing.T) {
	late := rotation.Policy{Fraction: 0.9, Jitter: -1}
	short := rotation.Validity{NotBefore: t0, NotAfter: t0.Add(6 * time.Second)}
	dues := spreadDues(t, late, 10*time.Second, 200, short, nil)
	for k, d := range dues {
		if d > 3*time.Second {
			t.Fatalf("%s (6s left) due at %v, past half its remaining life", k, d)
		}
	}
	if n := perSecond(dues)[0]; n > 70 {
		t.Fatalf("%d of 200 keys due in the first second, want them paced over 3s", n)
	}

	long := rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	dues = spreadDues(t, late, 10*time.Second, 200, long,
		map[string]rotation.Validity{"zz-little-left": {NotBefore: t0, NotAfter: t0.Add(2 * time.Second)}})
	first := dues["zz-little-left"]
	if first > time.Second {
		t.Fatalf("the key with 2s left is due at %v, past half its remaining life", first)
	}
	for k, d := range dues {
		if d < first {
			t.Fatalf("%s (an hour left) due at %v, before the key with 2s left (%v)", k, d, first)
		}
	}
}

// TestSchedulerSpreadRenewsAsTheClockReachesEachSlot: on a running
// scheduler, 20 keys spread over 2 s are renewed a few at a time as the
// clock moves, each once, all by the end of the window; a spread of 0
// renews them all without the clock moving.
func TestSchedulerSpreadRenewsAsTheClockReachesEachSlot(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour}
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half, Workers: 20})
	for i := range 20 {
		s.Track(fmt.Sprintf("k%02d", i), rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)})
	}
	blockedOnClock(t, clk)
	s.Spread(2 * time.Second)
	for step := 1; step <= 10; step++ {
		clk.Step(200 * time.Millisecond)
		want := 2 * step // slots (i+0.5)/20·2s: 2 per 200 ms
		testutil.Eventually(t, fmt.Sprintf("%d renewals by %v", want, clk.Since(t0)), func() bool { return r.count() >= want })
		blockedOnClock(t, clk)
		if got := r.count(); got != want {
			t.Fatalf("%d renewals by +%v, want %d (2 per 200ms)", got, clk.Since(t0), want)
		}
	}

	s.Spread(0)
	testutil.Eventually(t, "every key renewed at once with no spread", func() bool { return r.count() == 40 })
}

// TestSchedulerRetryFailedIsPacedMostUrgentFirst: when the CA answers
// again after an outage, the 20 keys whose renewals failed are not all made
// due at once (they would reach the CA together, from every agent whose
// outage ended in the same second) but paced 50 ms apart from the drawn
// phase, most urgent first, over [0, 1s); a key with 200 ms left goes
// within half of that, first.
func TestSchedulerRetryFailedIsPacedMostUrgentFirst(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour}
	r.failing.Store(true)
	var failures atomic.Int32
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half, Workers: 30,
		Backoff:   rotation.Backoff{Initial: time.Minute, Max: time.Hour},
		OnFailure: func(string, int, time.Time, error) { failures.Add(1) }})
	// Overdue, so each is tried at once and fails; k19 expires first.
	for i := range 20 {
		s.Track(fmt.Sprintf("k%02d", i), rotation.Validity{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Duration(40-i) * time.Minute)})
	}
	s.Track("urgent", rotation.Validity{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(200 * time.Millisecond)})
	testutil.Eventually(t, "every key failed once", func() bool { return failures.Load() == 21 })

	r.failing.Store(false)
	if n := s.RetryFailed(50 * time.Millisecond); n != 21 {
		t.Fatalf("RetryFailed = %d, want the 21 failed keys", n)
	}
	urgent, _ := s.Due("urgent")
	if d := urgent.Sub(t0); d < 0 || d > 100*time.Millisecond {
		t.Fatalf("the key with 200ms left is due at +%v, want within half its remaining life", d)
	}
	prev := urgent
	for i := 19; i >= 0; i-- { // most urgent (k19) first
		due, _ := s.Due(fmt.Sprintf("k%02d", i))
		// Slot (j+0.5)/21 of 21 × 50 ms, j = 20-i.
		want := t0.Add(time.Duration((float64(20-i) + 0.5) * float64(50*time.Millisecond)))
		if !due.Equal(want) || due.Before(prev) {
			t.Fatalf("k%02d due at +%v, want +%v (50ms apart, most urgent first)", i, due.Sub(t0), want.Sub(t0))
		}
		prev = due
	}
	clk.Step(1100 * time.Millisecond)
	testutil.Eventually(t, "every failed key renewed within the 1.05s window", func() bool { return r.count() == 42 })
}
