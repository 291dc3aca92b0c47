package cache_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
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
	if s.failing.Load() {
		return nil, ca.ErrUnavailable
	}
	return s.ca.SignX509SVID(ctx, req)
}

func newSigner(t *testing.T) *countingSigner {
	t.Helper()
	c, err := local.New(local.Config{TrustDomain: td})
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
			serials[i] = sub.SVIDs()[0].Chain[0].SerialNumber.String()
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

func TestFirstIssuanceFailureIsRetriedOnNextRequest(t *testing.T) {
	signer := newSigner(t)
	c := cache.New(cache.Config{Signer: signer})
	run(t, c)
	signer.failing.Store(true)
	if _, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{}); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("Subscribe with the CA down: %v, want ErrUnavailable", err)
	}
	signer.failing.Store(false)
	sub, err := c.Subscribe(context.Background(), []registry.Entry{entry("/web")}, cache.Requester{})
	if err != nil {
		t.Fatalf("Subscribe after the CA came back: %v", err)
	}
	sub.Close()
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
