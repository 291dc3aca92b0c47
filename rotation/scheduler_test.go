package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

// fakeRenewer records calls and answers with a fixed lifetime, or an error
// while failing is set. It blocks each call until release allows it, so tests
// can observe concurrency.
type fakeRenewer struct {
	clock    *clocktesting.FakeClock
	lifetime time.Duration
	failing  atomic.Bool
	gate     chan struct{} // nil: never block

	mu       sync.Mutex
	calls    []string
	inflight int
	peak     int
}

func (f *fakeRenewer) Renew(ctx context.Context, key string) (rotation.Validity, error) {
	f.mu.Lock()
	f.calls = append(f.calls, key)
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	if f.failing.Load() {
		return rotation.Validity{}, errors.New("ca unavailable")
	}
	now := f.clock.Now()
	return rotation.Validity{NotBefore: now, NotAfter: now.Add(f.lifetime)}, nil
}

func (f *fakeRenewer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func startScheduler(t *testing.T, cfg rotation.Config) *rotation.Scheduler {
	t.Helper()
	s := rotation.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// blockedOnClock waits until the scheduler is blocked on its timer again
// after a Step, so a test can then assert that the step started nothing.
// It is a barrier: a timer that fired during the Step is gone from the fake
// clock, and the scheduler arms the next one only after the renewal it
// started has called the renewer; so once a timer is armed, every renewal
// the Step caused has been counted.
func blockedOnClock(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	testutil.Eventually(t, "the scheduler to block on its timer", clk.HasWaiters)
}

func half() float64 { return 0.5 }

func TestSchedulerRenewsAtHalfLife(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour}
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half})
	s.Track("a", rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)})

	testutil.Eventually(t, "timer armed", clk.HasWaiters)
	clk.Step(29 * time.Minute)
	blockedOnClock(t, clk)
	if n := r.count(); n != 0 {
		t.Fatalf("renewed %d times before half life", n)
	}
	clk.Step(time.Minute)
	testutil.Eventually(t, "first renewal", func() bool { return r.count() == 1 })
	due, _ := s.Due("a")
	if want := t0.Add(30*time.Minute + 30*time.Minute); !due.Equal(want) {
		t.Fatalf("next due %v, want %v", due, want)
	}
}

func TestSchedulerBacksOffThenRecovers(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour}
	r.failing.Store(true)
	var failures atomic.Int32
	s := startScheduler(t, rotation.Config{
		Renewer: r, Clock: clk, Rand: half,
		Backoff:   rotation.Backoff{Initial: time.Second, Max: 8 * time.Second},
		OnFailure: func(string, int, time.Time, error) { failures.Add(1) },
	})
	s.Track("a", rotation.Validity{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)})
	testutil.Eventually(t, "overdue key renewed", func() bool { return r.count() == 1 })
	testutil.Eventually(t, "failure reported", func() bool { return failures.Load() == 1 })

	// Retries come at 0.75s, 1.5s, 3s, 6s, 6s (capped) with r=0.5.
	for i, step := range []time.Duration{750, 1500, 3000, 6000, 6000} {
		due, _ := s.Due("a")
		if got := due.Sub(clk.Now()); got != step*time.Millisecond {
			t.Fatalf("retry %d due in %v, want %v", i+1, got, step*time.Millisecond)
		}
		clk.Step(step * time.Millisecond)
		testutil.Eventually(t, "retry", func() bool { return failures.Load() == int32(i+2) })
	}

	r.failing.Store(false)
	clk.Step(6 * time.Second)
	testutil.Eventually(t, "recovery", func() bool { return r.count() == 7 })
	testutil.Eventually(t, "rescheduled at half life", func() bool {
		due, _ := s.Due("a")
		return due.Sub(clk.Now()) == 30*time.Minute
	})
}

func TestSchedulerBoundsConcurrency(t *testing.T) {
	const workers, keys = 3, 10
	clk := clocktesting.NewFakeClock(t0)
	// Every renewal blocks until the test releases it, so the scheduler
	// fills every worker slot and reaching the bound does not depend on
	// how fast the machine is.
	r := &fakeRenewer{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half, Workers: workers})
	for i := range keys {
		s.Track(string(rune('a'+i)), rotation.Validity{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Minute)})
	}
	for released := 0; released < keys; released++ {
		// All keys are overdue: as many as the bound allows (or as remain)
		// are in flight before one is released, and never more.
		want := min(workers, keys-released)
		testutil.Eventually(t, fmt.Sprintf("%d renewals in flight", want), func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.inflight >= want || r.peak > workers
		})
		r.mu.Lock()
		peak := r.peak
		r.mu.Unlock()
		if peak > workers {
			t.Fatalf("%d renewals ran at once, want at most %d", peak, workers)
		}
		r.gate <- struct{}{}
	}
	testutil.Eventually(t, "all renewed", func() bool { return r.count() == keys })
	if r.peak != workers {
		t.Fatalf("peak concurrency %d, want the bound %d", r.peak, workers)
	}
}

func TestSchedulerForce(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour}
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half})
	v := rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	s.Track("a", v)
	s.Track("b", v)

	if n := s.Force("a", "unknown"); n != 1 {
		t.Fatalf("Force scheduled %d keys, want 1", n)
	}
	testutil.Eventually(t, "forced renewal", func() bool { return r.count() == 1 })
	if n := s.Force(); n != 2 {
		t.Fatalf("Force() scheduled %d keys, want 2", n)
	}
	testutil.Eventually(t, "forced renewal of all", func() bool { return r.count() == 3 })

	s.Untrack("b")
	if n := s.Force(); n != 1 {
		t.Fatalf("Force() after Untrack scheduled %d keys, want 1", n)
	}
	testutil.Eventually(t, "forced renewal after untrack", func() bool { return r.count() == 4 })
	if _, ok := s.Due("b"); ok {
		t.Fatal("untracked key still scheduled")
	}
}

func TestSchedulerForceWhileRunningRenewsAgain(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half})
	s.Track("a", rotation.Validity{NotBefore: t0, NotAfter: t0.Add(time.Hour)})
	s.Force("a")
	testutil.Eventually(t, "renewal in flight", func() bool { return r.count() == 1 })
	s.Force("a")
	r.gate <- struct{}{}
	testutil.Eventually(t, "second renewal", func() bool { return r.count() == 2 })
	r.gate <- struct{}{}
	testutil.Eventually(t, "back on schedule", func() bool {
		due, _ := s.Due("a")
		return due.Equal(t0.Add(30 * time.Minute))
	})
}

// TestSchedulerForceWhileRunningSurvivesAFailure: a key forced while its
// renewal is in flight is renewed again when that renewal returns, even
// if it failed: the forced renewal (a re-issue under a new CA) must not
// wait out the failure's backoff.
func TestSchedulerForceWhileRunningSurvivesAFailure(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	r.failing.Store(true)
	s := startScheduler(t, rotation.Config{Renewer: r, Clock: clk, Rand: half,
		Backoff: rotation.Backoff{Initial: time.Hour, Max: time.Hour}})
	s.Track("a", rotation.Validity{NotBefore: t0, NotAfter: t0.Add(2 * time.Hour)})
	s.Force("a")
	testutil.Eventually(t, "renewal in flight", func() bool { return r.count() == 1 })
	s.Force("a")
	r.gate <- struct{}{} // the first renewal fails
	testutil.Eventually(t, "the forced renewal again, not after the hour's backoff", func() bool { return r.count() == 2 })
	r.gate <- struct{}{} // and so does this one: then the backoff holds
	testutil.Eventually(t, "the backoff after the second failure", func() bool {
		due, _ := s.Due("a")
		return due.Equal(t0.Add(45 * time.Minute)) // an hour's backoff, jittered at r=0.5
	})
}

// TestSchedulerRetryFailedGoesMostUrgentFirst: after an outage every failed
// key waits out its own backoff; RetryFailed makes them all due now, and
// they are renewed in order of expiry (expired ones first), whatever order
// they were tracked in or their backoff said.
func TestSchedulerRetryFailedGoesMostUrgentFirst(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := &fakeRenewer{clock: clk, lifetime: time.Hour, gate: make(chan struct{})}
	r.failing.Store(true)
	var failures atomic.Int32
	s := startScheduler(t, rotation.Config{
		Renewer: r, Clock: clk, Rand: half, Workers: 1,
		Backoff:   rotation.Backoff{Initial: time.Minute, Max: time.Hour},
		OnFailure: func(string, int, time.Time, error) { failures.Add(1) },
	})
	// Tracked least urgent first; all overdue, so all are tried (and fail)
	// at once; "a" has expired already.
	expiries := map[string]time.Duration{"e": 50 * time.Minute, "d": 40 * time.Minute, "c": 30 * time.Minute, "b": 20 * time.Minute, "a": -time.Minute}
	for _, k := range []string{"e", "d", "c", "b", "a"} {
		s.Track(k, rotation.Validity{NotBefore: t0.Add(-2 * time.Hour), NotAfter: t0.Add(expiries[k])})
	}
	for range expiries {
		r.gate <- struct{}{}
	}
	testutil.Eventually(t, "every key failed once", func() bool { return failures.Load() == 5 })
	for k := range expiries {
		if due, _ := s.Due(k); !due.After(clk.Now()) {
			t.Fatalf("%s is due at %v after a failure, want a backoff past now (%v)", k, due, clk.Now())
		}
	}

	r.failing.Store(false)
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
	if n := s.RetryFailed(0); n != 5 {
		t.Fatalf("RetryFailed = %d, want 5", n)
	}
	for range expiries {
		r.gate <- struct{}{}
	}
	testutil.Eventually(t, "every key renewed", func() bool { return r.count() == 5 })
	r.mu.Lock()
	got := fmt.Sprint(r.calls)
	r.mu.Unlock()
	if want := "[a b c d e]"; got != want {
		t.Fatalf("renewed in order %s, want most urgent first %s", got, want)
	}
	if n := s.RetryFailed(0); n != 0 {
		t.Fatalf("RetryFailed after recovery = %d, want 0 (nothing is failing)", n)
	}
}
