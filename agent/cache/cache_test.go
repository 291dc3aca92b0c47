package cache_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// countingSigner wraps the embedded CA, counts calls, records peak
// concurrency, and fails while failing is set.
type countingSigner struct {
	ca      *local.CA
	delay   time.Duration
	failing atomic.Bool
	hang    atomic.Bool // wait for the call's context to end

	calls    atomic.Int32
	inflight atomic.Int32
	peak     atomic.Int32
}

func (s *countingSigner) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	s.calls.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(s.delay)
	if s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.failing.Load() {
		return nil, ca.ErrUnavailable
	}
	return s.ca.SignX509SVID(ctx, req)
}

func newSigner(t *testing.T) *countingSigner {
	t.Helper()
	return newSignerOn(t, nil)
}

// newSignerOn is newSigner with the CA on clk (nil: the real clock).
func newSignerOn(t *testing.T, clk clock.Clock) *countingSigner {
	t.Helper()
	c, err := local.New(local.Config{TrustDomain: td, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &countingSigner{ca: c}
}

func entry(path string) registry.Entry {
	return registry.Entry{ID: spiffeid.RequireFromPath(td, path), TTL: time.Hour}
}

func run(t *testing.T, c *cache.Cache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestConcurrentFirstRequestsShareOneIssuance(t *testing.T) {
	signer := newSigner(t)
	signer.delay = 20 * time.Millisecond
	c := cache.New(cache.Config{Signer: signer})
	run(t, c)

	var wg sync.WaitGroup
	serials := make([]string, 50)
	for i := range serials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
			if err != nil {
				t.Error(err)
				return
			}
			defer sub.Close()
			serials[i] = sub.SVIDs()[0].Serial
		}()
	}
	wg.Wait()
	if n := signer.calls.Load(); n != 1 {
		t.Fatalf("50 concurrent requests for one identity made %d CA calls, want 1", n)
	}
	for _, s := range serials[1:] {
		if s != serials[0] {
			t.Fatal("subscribers got different SVIDs for the same identity")
		}
	}
}

func TestCACallsAreBounded(t *testing.T) {
	signer := newSigner(t)
	signer.delay = 10 * time.Millisecond
	c := cache.New(cache.Config{Signer: signer, MaxConcurrent: 3})
	run(t, c)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/w" + string(rune('a'+i)))}, cache.Requester{})
			if err != nil {
				t.Error(err)
				return
			}
			sub.Close()
		}()
	}
	wg.Wait()
	if p := signer.peak.Load(); p > 3 {
		t.Fatalf("peak CA concurrency %d, want at most 3", p)
	}
	if c.Rotate() != 20 {
		t.Fatal("Rotate() did not schedule every cached SVID")
	}
}

func TestFailedRenewalKeepsServingAndRecovers(t *testing.T) {
	signer := newSigner(t)
	c := cache.New(cache.Config{Signer: signer, Backoff: rotation.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	run(t, c)
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	first := sub.SVIDs()[0]

	signer.failing.Store(true)
	c.Rotate()
	testutil.Eventually(t, "retries", func() bool { return signer.calls.Load() >= 4 })
	if got := sub.SVIDs()[0]; got != first {
		t.Fatal("a failed renewal replaced the SVID being served")
	}
	signer.failing.Store(false)
	select {
	case <-sub.Updates():
	case <-time.After(10 * time.Second):
		t.Fatal("no update after the CA came back")
	}
	if got := sub.SVIDs()[0]; got == first {
		t.Fatal("the SVID was not renewed after the CA came back")
	}
}

// TestFailedFirstIssuanceBacksOff: a first issuance that failed is not
// retried for every workload that asks (during an outage each new process
// would cost a CA call); its error is served until the backoff has passed,
// and the next ask after that tries again, with a longer backoff if it
// fails again.
func TestFailedFirstIssuanceBacksOff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := newSigner(t)
	backoff := rotation.Backoff{Initial: time.Second, Max: time.Minute}
	c := cache.New(cache.Config{Signer: signer, Clock: clk, Backoff: backoff})
	run(t, c)
	subscribe := func() error {
		t.Helper()
		sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
		if err == nil {
			sub.Close()
		}
		return err
	}
	signer.failing.Store(true)
	for i := range 10 {
		if err := subscribe(); !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "attempt 1;") {
			t.Fatalf("Subscribe %d with the CA down: %v, want ErrUnavailable, attempt 1", i, err)
		}
	}
	if n := signer.calls.Load(); n != 1 {
		t.Fatalf("10 workloads asking during the backoff made %d CA calls, want 1", n)
	}
	// The CA is back, but the backoff has not passed: still the error.
	signer.failing.Store(false)
	if err := subscribe(); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("Subscribe within the backoff: %v, want the cached ErrUnavailable", err)
	}
	clk.Step(backoff.Initial) // the first delay is at most Initial
	if err := subscribe(); err != nil {
		t.Fatalf("Subscribe after the backoff with the CA back: %v", err)
	}
	if n := signer.calls.Load(); n != 2 {
		t.Fatalf("%d CA calls, want 2", n)
	}

	// Failing again doubles the backoff: after Initial it may not be over.
	signer.failing.Store(true)
	api := func() error {
		sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/api")}, cache.Requester{})
		if err == nil {
			sub.Close()
		}
		return err
	}
	_ = api()
	clk.Step(backoff.Initial)
	if err := api(); err == nil || !strings.Contains(err.Error(), "attempt 2;") {
		t.Fatalf("second failure: %v, want attempt 2", err)
	}
	if n := signer.calls.Load(); n != 4 {
		t.Fatalf("%d CA calls, want 4 (one per attempt)", n)
	}
	signer.failing.Store(false)
	clk.Step(2 * backoff.Initial) // attempt 2 waits 1-2 s
	if err := api(); err != nil {
		t.Fatalf("after the second backoff: %v", err)
	}
}

func TestIdleSVIDsAreDropped(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := newSigner(t)
	c := cache.New(cache.Config{Signer: signer, Clock: clk, IdleTimeout: 10 * time.Minute})
	run(t, c)
	held, err := c.Subscribe(context.Background(), []registry.Entry{entry("/held")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	idle, err := c.Subscribe(context.Background(), []registry.Entry{entry("/idle")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	idle.Close()
	if c.Len() != 2 {
		t.Fatalf("cached %d, want 2", c.Len())
	}
	// Keep time moving: the janitor's ticker may start after a single step.
	testutil.Eventually(t, "the idle SVID to be dropped", func() bool {
		clk.Step(time.Minute)
		return c.Len() == 1
	})
	if ids := c.Identities(); ids[0].SVID.Entry.ID.Path() != "/held" {
		t.Fatalf("kept %s, want /held", ids[0].SVID.Entry.ID)
	}
}

// hungSigner never answers: it returns only when its call's context ends,
// with the bare context error, as a CA client whose request was cancelled.
type hungSigner struct{ calls atomic.Int32 }

func (s *hungSigner) SignX509SVID(ctx context.Context, _ ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// A CA that hangs holds a call for SignTimeout (on the cache's clock), not
// until some HTTP client gives up; the call then fails as an outage, and
// the agent is told so at this first timeout.
func TestHungCAIsUnavailableAfterSignTimeout(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := &hungSigner{}
	results := &testutil.ErrorLog{}
	c := cache.New(cache.Config{Signer: signer, Clock: clk, SignTimeout: 20 * time.Second, OnCAResult: results.Add})
	run(t, c)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(context.Background(), []registry.Entry{entry("/hung")}, cache.Requester{})
		errc <- err
	}()
	testutil.Eventually(t, "the CA call to start and its timeout to be set", func() bool {
		return signer.calls.Load() == 1 && clk.HasWaiters()
	})
	clk.Step(19 * time.Second)
	select {
	case err := <-errc:
		t.Fatalf("the call ended %v before its timeout: %v", 19*time.Second, err)
	default:
	}
	clk.Step(time.Second)
	select {
	case err := <-errc:
		if !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within 20s") {
			t.Fatalf("Subscribe with a hung CA: %v, want ca.ErrUnavailable saying it did not answer within 20s", err)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("the call was not ended at its timeout")
	}
	if got := results.Since(0); len(got) != 1 || !errors.Is(got[0], ca.ErrUnavailable) {
		t.Fatalf("the agent was told %v, want one ca.ErrUnavailable", got)
	}
}

// timedSigner records the time on clk of every CA call.
type timedSigner struct {
	*countingSigner
	clk *clocktesting.FakeClock

	mu    sync.Mutex
	times []time.Time
	ids   []spiffeid.ID
}

func (s *timedSigner) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	s.mu.Lock()
	s.times = append(s.times, s.clk.Now())
	s.ids = append(s.ids, req.ID)
	s.mu.Unlock()
	return s.countingSigner.SignX509SVID(ctx, req)
}

// TestRateIsTimedOnTheCachesClock: Rate bounds CA calls per second of the
// cache's clock, so a test (and the agent's fake-clock life tests) can
// check the bound. At 0.1 calls/s the k-th call may not come before 10·k
// seconds; on the real clock six calls would take 50 s of waiting.
func TestRateIsTimedOnTheCachesClock(t *testing.T) {
	const calls, every = 6, 10 * time.Second
	clk := clocktesting.NewFakeClock(time.Now())
	start := clk.Now()
	signer := &timedSigner{countingSigner: newSigner(t), clk: clk}
	c := cache.New(cache.Config{Signer: signer, Clock: clk, Rate: 0.1, MaxConcurrent: calls})
	run(t, c)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			sub, err := c.Subscribe(context.Background(), []registry.Entry{entry(fmt.Sprintf("/w%d", i))}, cache.Requester{})
			if err != nil {
				t.Error(err)
				return
			}
			sub.Close()
		})
	}
	for k := 1; k <= calls; k++ {
		testutil.Eventually(t, fmt.Sprintf("CA call %d", k), func() bool { return signer.calls.Load() >= int32(k) })
		clk.Step(every)
	}
	wg.Wait()
	signer.mu.Lock()
	defer signer.mu.Unlock()
	slices.SortFunc(signer.times, time.Time.Compare)
	for k, at := range signer.times {
		if earliest := start.Add(time.Duration(k) * every); at.Before(earliest) {
			t.Errorf("CA call %d at +%v, want no earlier than +%v (rate 0.1/s, burst 1)", k, at.Sub(start), earliest.Sub(start))
		}
	}
}

// TestRetryFailedRenewsExpiredSVIDsFirst: SVIDs whose renewal failed during
// an outage are renewed as soon as RetryFailed says the CA is back, without
// waiting out their backoff (up to an hour here), the expired one first.
func TestRetryFailedRenewsExpiredSVIDsFirst(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := &timedSigner{countingSigner: newSignerOn(t, clk), clk: clk}
	c := cache.New(cache.Config{Signer: signer, Clock: clk, MaxConcurrent: 1,
		Backoff: rotation.Backoff{Initial: time.Minute, Max: time.Hour}})
	run(t, c)
	short := registry.Entry{ID: spiffeid.RequireFromPath(td, "/short"), TTL: 2 * time.Minute}
	long := registry.Entry{ID: spiffeid.RequireFromPath(td, "/long"), TTL: time.Hour}
	sub, err := c.Subscribe(context.Background(), []registry.Entry{long, short}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	signer.failing.Store(true)
	// 40 minutes of outage: the short SVID expires at +2m, the long one's
	// renewals fail from about +30m; each then waits out a backoff.
	for range 40 {
		clk.Step(time.Minute)
	}
	testutil.Eventually(t, "both renewals to fail and wait out a backoff", func() bool {
		ids := c.Identities()
		return len(ids) == 2 && signer.inflight.Load() == 0 &&
			ids[0].NextRenewal.After(clk.Now()) && ids[1].NextRenewal.After(clk.Now())
	})
	if got := sub.SVIDs(); len(got) != 1 || got[0].Entry.ID != long.ID {
		t.Fatalf("the subscription hands out %d SVIDs, want only the long one: the short one has expired", len(got))
	}
	signer.failing.Store(false)
	signer.mu.Lock()
	failedCalls := len(signer.times)
	signer.mu.Unlock()
	old := sub.SVIDs()[0]
	if n := c.RetryFailed(); n != 2 {
		t.Fatalf("RetryFailed = %d, want the 2 failed SVIDs", n)
	}
	testutil.Eventually(t, "both renewed without the clock moving", func() bool {
		got := sub.SVIDs()
		return len(got) == 2 && got[0] != old
	})
	signer.mu.Lock()
	defer signer.mu.Unlock()
	if got := fmt.Sprint(signer.ids[failedCalls:]); got != fmt.Sprint([]spiffeid.ID{short.ID, long.ID}) {
		t.Fatalf("renewed %s after the outage, want the expired one first and one call each", got)
	}
}

// TestExpiredSVIDFromTheCAIsRefused: a CA whose clock is behind the
// agent's returns SVIDs that are already expired by the agent's clock.
// Serving one is wrong, and tracking it would renew it in a loop (it is
// always past its renewal point): it is refused as a bad certificate and
// retried with backoff, and the SVID being served is kept.
func TestExpiredSVIDFromTheCAIsRefused(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := newSigner(t) // on the real clock: behind clk once clk is stepped
	c := cache.New(cache.Config{Signer: signer, Clock: clk})
	run(t, c)
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	served := sub.SVIDs()[0]

	clk.Step(2 * time.Hour) // past the SVID's renewal point, and its CA's idea of now
	testutil.Eventually(t, "the renewal to fail and wait out a backoff", func() bool {
		ids := c.Identities()
		return signer.calls.Load() >= 2 && signer.inflight.Load() == 0 && ids[0].NextRenewal.After(clk.Now())
	})
	if n := signer.calls.Load(); n != 2 {
		t.Fatalf("%d CA calls, want 2: an expired SVID from the CA was renewed again at once", n)
	}
	if c.Identities()[0].SVID != served {
		t.Fatal("an SVID already expired by the agent's clock replaced the one cached")
	}
	_, err = c.Subscribe(context.Background(), []registry.Entry{entry("/api")}, cache.Requester{})
	if !errors.Is(err, ca.ErrBadCertificate) || !strings.Contains(err.Error(), "check the clocks") {
		t.Fatalf("first issuance of an expired SVID: %v, want ca.ErrBadCertificate naming the clocks", err)
	}
}

// TestRenewalTimeoutLeavesRoomToRetry: a renewal's CA call gets a quarter
// of what is left of the SVID it replaces, not the whole SignTimeout: a
// 1-minute SVID renewed at half-life would otherwise spend its whole
// margin on one call to a hung CA.
func TestRenewalTimeoutLeavesRoomToRetry(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := newSignerOn(t, clk)
	results := &testutil.ErrorLog{}
	c := cache.New(cache.Config{Signer: signer, Clock: clk, OnCAResult: results.Add})
	run(t, c)
	e := registry.Entry{ID: spiffeid.RequireFromPath(td, "/web"), TTL: time.Minute}
	sub, err := c.Subscribe(context.Background(), []registry.Entry{e}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	id := c.Identities()[0]
	want := id.SVID.NotAfter.Sub(id.NextRenewal) / 4
	if want >= cache.DefaultSignTimeout {
		t.Fatalf("the test's premise is wrong: a quarter of what is left (%v) is not under SignTimeout", want)
	}

	signer.hang.Store(true)
	clk.SetTime(id.NextRenewal)
	testutil.Eventually(t, "the renewal to call the hung CA", func() bool { return signer.calls.Load() == 2 })
	testutil.Eventually(t, "the call's timeout to be set", func() bool { return clk.Waiters() >= 2 })
	clk.Step(want)
	testutil.Eventually(t, "the hung call to end", func() bool { return len(results.Since(0)) == 2 })
	got := results.Since(0)[1]
	if !errors.Is(got, ca.ErrUnavailable) || !strings.Contains(got.Error(), fmt.Sprintf("did not answer within %v:", want)) {
		t.Fatalf("the renewal ended with %v, want ca.ErrUnavailable after %v", got, want)
	}
}

// TestRotateAndWaitReturnsOnceEverySVIDIsReissued: the agent records that
// a CA change was carried through only when RotateAndWait returns, so it
// must not return while an SVID from before the call is still served,
// however long the CA is down.
func TestRotateAndWaitReturnsOnceEverySVIDIsReissued(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	signer := newSignerOn(t, clk)
	c := cache.New(cache.Config{Signer: signer, Clock: clk, Backoff: rotation.Backoff{Initial: time.Minute, Max: time.Minute}})
	run(t, c)
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/a"), entry("/b"), entry("/c")}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	before := sub.SVIDs()

	signer.failing.Store(true)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.RotateAndWait(context.Background())
		done <- result{n, err}
	}()
	testutil.Eventually(t, "every forced renewal to fail and wait out its backoff", func() bool {
		if signer.calls.Load() < 6 || signer.inflight.Load() != 0 {
			return false
		}
		for _, id := range c.Identities() {
			if !id.NextRenewal.After(clk.Now()) {
				return false
			}
		}
		return true
	})
	select {
	case r := <-done:
		t.Fatalf("RotateAndWait returned (%d, %v) while every renewal had failed", r.n, r.err)
	default:
	}
	signer.failing.Store(false)
	clk.Step(time.Minute)
	select {
	case r := <-done:
		if r.n != 3 || r.err != nil {
			t.Fatalf("RotateAndWait = %d, %v; want 3, nil", r.n, r.err)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("RotateAndWait did not return once the CA was back")
	}
	for i, svid := range sub.SVIDs() {
		if svid == before[i] {
			t.Fatalf("RotateAndWait returned with %s not re-issued", svid.Entry.ID)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	signer.failing.Store(true)
	cancel()
	if _, err := c.RotateAndWait(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "of 3 SVIDs not re-issued yet") {
		t.Fatalf("RotateAndWait with its context ended: %v, want context.Canceled saying how many are left", err)
	}
}
