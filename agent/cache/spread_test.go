package cache_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

const reissueStep = 100 * time.Millisecond

func half() float64 { return 0.5 }

// reissueRig is a cache on a fake clock holding n identities, its CA calls
// timed on that clock.
type reissueRig struct {
	t      *testing.T
	clk    *clocktesting.FakeClock
	signer *timedSigner
	c      *cache.Cache
	start  int // CA calls before the re-issue
	done   chan error
}

func newReissueRig(t *testing.T, cfg cache.Config, entries []registry.Entry) *reissueRig {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	r := &reissueRig{t: t, clk: clk, signer: &timedSigner{countingSigner: newSignerOn(t, clk), clk: clk}}
	cfg.Signer, cfg.Clock, cfg.Rand = r.signer, clk, half
	r.c = cache.New(cfg)
	run(t, r.c)
	// The first issuances wait on the rate cap's timer when there is one:
	// move the clock until they are done.
	subc := make(chan *cache.Subscription, 1)
	go func() {
		sub, err := r.c.Subscribe(context.Background(), entries, cache.Requester{})
		if err != nil {
			t.Error(err)
		}
		subc <- sub
	}()
	for {
		select {
		case sub := <-subc:
			if sub == nil {
				t.FailNow()
			}
			t.Cleanup(sub.Close)
			return r
		case <-time.After(time.Millisecond):
			clk.Step(time.Second)
		}
	}
}

// reissue starts RotateAndWait, as a CA change does, and waits until it
// has scheduled every SVID within window (or re-issued it), so that the
// clock moves only after that.
func (r *reissueRig) reissue(window time.Duration) {
	r.t.Helper()
	r.signer.mu.Lock()
	r.start = len(r.signer.times)
	r.signer.mu.Unlock()
	before := map[string]string{}
	for _, id := range r.c.Identities() {
		before[id.SVID.Entry.Key()] = id.SVID.Serial
	}
	at := r.clk.Now()
	r.done = make(chan error, 1)
	go func() {
		_, err := r.c.RotateAndWait(context.Background())
		r.done <- err
	}()
	testutil.Eventually(r.t, "every SVID scheduled within the window", func() bool {
		for _, id := range r.c.Identities() {
			if id.SVID.Serial == before[id.SVID.Entry.Key()] && id.NextRenewal.After(at.Add(window)) {
				return false
			}
		}
		return true
	})
}

// calls returns the CA calls since reissue: their times from its start,
// and their IDs.
func (r *reissueRig) calls(at time.Time) ([]time.Duration, []spiffeid.ID) {
	r.signer.mu.Lock()
	defer r.signer.mu.Unlock()
	var times []time.Duration
	for _, t := range r.signer.times[r.start:] {
		times = append(times, t.Sub(at))
	}
	return times, slices.Clone(r.signer.ids[r.start:])
}

// stepUntilDone moves the clock in small steps until RotateAndWait
// returns, and returns when each CA call came. Before each step it waits
// for at least least(elapsed) calls, a lower bound of what the pace allows
// by then, so that a call comes at the step that made it due, not later.
// Once least asks for every call (it saturates), RotateAndWait has only
// its bookkeeping left, which takes real time, not clock time: it is
// awaited in real time while the clock keeps moving slowly.
func (r *reissueRig) stepUntilDone(least func(time.Duration) int) []time.Duration {
	r.t.Helper()
	at := r.clk.Now()
	all := least(time.Hour)
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		elapsed := r.clk.Since(at)
		want := least(elapsed)
		testutil.Eventually(r.t, fmt.Sprintf("%d re-issues by +%v", want, elapsed), func() bool {
			times, _ := r.calls(at)
			return len(times) >= want
		})
		var pause <-chan time.Time // nil: do not wait
		if want >= all {
			pause = time.After(10 * time.Millisecond)
		}
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Fatal(err)
			}
			times, _ := r.calls(at)
			return times
		case <-pause:
		default:
			if pause != nil {
				<-pause
			}
		}
		if want < all && elapsed > time.Minute || time.Now().After(deadline) {
			r.t.Fatalf("RotateAndWait has not returned by +%v (%v real time)", elapsed, testutil.WaitTimeout)
		}
		r.clk.Step(reissueStep)
	}
}

// slots is how many of n re-issues spread over window are due by d
// (slots (i+0.5)/n of the window, the phase being half): the pace to
// wait for before each step.
func slots(n int, window time.Duration) func(time.Duration) int {
	return func(d time.Duration) int { return min(n, int((d+window/time.Duration(2*n))*time.Duration(n)/window)) }
}

func entries(n int) []registry.Entry {
	out := make([]registry.Entry, n)
	for i := range out {
		out[i] = entry(fmt.Sprintf("/w%03d", i))
	}
	return out
}

// TestReissueIsSpreadOverItsWindow: after a CA change, 200 identities at
// 5 s per 100 are re-issued over [0, 10s), about 20 a second (slots 50 ms
// apart, seen at 100 ms steps), not in one burst; with no spread all go at
// once, as before the spread existed; and rotation.max_per_second still
// holds on top of the spread.
func TestReissueIsSpreadOverItsWindow(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		spread    time.Duration
		rate      float64
		least     func(time.Duration) int
		lastAtMin time.Duration // the last call no earlier
		lastAtMax time.Duration // nor later
		perSecond int           // calls in any second at most
	}{
		{name: "200 over 10s", n: 200, spread: 5 * time.Second, least: slots(200, 10*time.Second),
			lastAtMin: 9 * time.Second, lastAtMax: 10 * time.Second, perSecond: 22},
		{name: "no spread", n: 200, least: func(time.Duration) int { return 200 }, perSecond: 200},
		{name: "rate cap on top", n: 40, spread: 5 * time.Second, rate: 2,
			// The cap's state from the first issuances may delay the first
			// call by up to one interval: wait for one fewer.
			least:     func(d time.Duration) int { return min(40, max(0, int(d/(500*time.Millisecond))-1)) },
			lastAtMin: 19 * time.Second, lastAtMax: 21 * time.Second, perSecond: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReissueRig(t, cache.Config{ReissueSpread: tt.spread, Rate: tt.rate, MaxConcurrent: 4}, entries(tt.n))
			r.reissue(tt.spread * time.Duration(tt.n) / 100)
			times := r.stepUntilDone(tt.least)
			if len(times) != tt.n {
				t.Fatalf("%d CA calls for %d identities, want one each", len(times), tt.n)
			}
			slices.Sort(times)
			if last := times[len(times)-1]; last < tt.lastAtMin || last > tt.lastAtMax {
				t.Fatalf("the last re-issue came at +%v, want within [%v, %v]", last, tt.lastAtMin, tt.lastAtMax)
			}
			for i, at := range times {
				if j, _ := slices.BinarySearch(times, at+time.Second); j-i > tt.perSecond {
					t.Fatalf("%d re-issues in the second from +%v, want at most %d", j-i, at, tt.perSecond)
				}
				// Rate 2/s, burst 2: call k may not come before (k-1)/2 s.
				if earliest := time.Duration(i-1) * 500 * time.Millisecond; tt.rate > 0 && at < earliest {
					t.Fatalf("re-issue %d came at +%v, before +%v that rate %v/s allows", i, at, earliest, tt.rate)
				}
			}
		})
	}
}

// TestReissueTakesTheSVIDWithLittleLeftFirst: an SVID whose renewals
// failed through an outage has 20 s left when the CA comes back and
// changes; among 200 with most of an hour left, it is re-issued first, at
// once, not in its slot by name (it sorts last) nor at its backoff.
func TestReissueTakesTheSVIDWithLittleLeftFirst(t *testing.T) {
	short := registry.Entry{ID: spiffeid.RequireFromPath(td, "/zz-short"), TTL: 2 * time.Minute}
	r := newReissueRig(t, cache.Config{ReissueSpread: 5 * time.Second, MaxConcurrent: 4,
		Backoff: rotation.Backoff{Initial: time.Minute, Max: time.Hour}}, append(entries(200), short))
	r.signer.failing.Store(true)
	for range 10 {
		r.clk.Step(10 * time.Second)
	}
	// Due at half its 2 m life, it fails at +60s and waits out a 45 s backoff.
	testutil.Eventually(t, "the short SVID's renewal to fail", func() bool {
		return r.signer.calls.Load() == 202 && r.signer.inflight.Load() == 0
	})
	r.signer.failing.Store(false)
	r.reissue(10050 * time.Millisecond)
	at := r.clk.Now()
	r.stepUntilDone(slots(201, 10050*time.Millisecond))
	times, ids := r.calls(at)
	i := slices.Index(ids, short.ID)
	if len(ids) != 201 || i < 0 || times[i] > reissueStep || times[i] > slices.Min(times) {
		t.Fatalf("of %d re-issues, %s came at +%v (index %d), want it first (calls in one %v step come together), within %v", len(ids), short.ID, times[max(i, 0)], i, reissueStep, reissueStep)
	}
}

// TestRetryFailedIsPacedAsAReissue: 40 renewals fail through an outage;
// when the CA answers again, RetryFailed renews them at the re-issue's
// pace (5 s per 100: 50 ms apart, over 2 s), not all in the first
// instant, where every agent whose outage ended together would send them.
func TestRetryFailedIsPacedAsAReissue(t *testing.T) {
	const n = 40
	r := newReissueRig(t, cache.Config{ReissueSpread: 5 * time.Second, MaxConcurrent: 4,
		Backoff: rotation.Backoff{Initial: time.Minute, Max: time.Hour}}, entries(n))
	r.signer.failing.Store(true)
	for range 4 {
		r.clk.Step(10 * time.Minute) // past every renewal point (30 m ± 6 m)
	}
	testutil.Eventually(t, "every renewal to fail and wait out a backoff", func() bool {
		if r.signer.calls.Load() < 2*n || r.signer.inflight.Load() != 0 {
			return false
		}
		for _, id := range r.c.Identities() {
			if !id.NextRenewal.After(r.clk.Now()) {
				return false
			}
		}
		return true
	})
	r.signer.failing.Store(false)
	r.signer.mu.Lock()
	r.start = len(r.signer.times)
	r.signer.mu.Unlock()
	at := r.clk.Now()
	if got := r.c.RetryFailed(); got != n {
		t.Fatalf("RetryFailed = %d, want the %d failed renewals", got, n)
	}
	window := n * 5 * time.Second / 100
	pace := slots(n, window)
	for elapsed := time.Duration(0); elapsed <= window; elapsed += reissueStep {
		testutil.Eventually(t, fmt.Sprintf("%d renewals by +%v", pace(elapsed), elapsed), func() bool {
			times, _ := r.calls(at)
			return len(times) >= pace(elapsed)
		})
		if times, _ := r.calls(at); len(times) > pace(elapsed)+1 {
			t.Fatalf("%d of %d failed renewals retried by +%v, want about %d (50 ms apart over %v)", len(times), n, elapsed, pace(elapsed), window)
		}
		r.clk.Step(reissueStep)
	}
	if times, _ := r.calls(at); len(times) != n {
		t.Fatalf("%d renewals after RetryFailed, want one for each of the %d failed", len(times), n)
	}
}
