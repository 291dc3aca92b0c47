package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

// Each step is one CA call's result, as a backend or the cache reports it
// to observeCA, and what the agent says afterwards.
var caHealthSteps = []struct {
	name      string
	err       error
	ready     string  // the /ready error, "" for ready
	reachable float64 // sworn_ca_reachable
	log       string  // what this step logs, "" for nothing
}{
	{name: "answered", err: nil, reachable: 1},
	{name: "outage", err: fmt.Errorf("vault: sign: %w", ca.ErrUnavailable),
		ready: "CA unreachable", reachable: 0, log: `level=ERROR msg="CA unreachable; cached SVIDs are still served" error="vault: sign: ca: unavailable"`},
	{name: "outage again logs nothing", err: fmt.Errorf("vault: sign: %w", ca.ErrUnavailable),
		ready: "CA unreachable", reachable: 0},
	{name: "back", err: nil, reachable: 1, log: `level=INFO msg="CA reachable again"`},
	{name: "refused login", err: fmt.Errorf("vault: login: permission denied: %w", ca.ErrRefused),
		ready: "CA refused the agent's credentials (fix the agent's CA credentials or the CA's policy; waiting will not help)", reachable: 1,
		log: `level=ERROR msg="CA refused the agent; cached SVIDs are still served, but none is renewed until an operator fixes the agent's CA credentials or the CA's policy" error="vault: login: permission denied: ca: refused"`},
	{name: "outage after a refusal", err: fmt.Errorf("vault: %w", ca.ErrUnavailable),
		ready: "CA unreachable", reachable: 0, log: `level=ERROR msg="CA unreachable; cached SVIDs are still served" error="vault: ca: unavailable"`},
	{name: "refused again", err: fmt.Errorf("vault: sign: %w", ca.ErrRefused),
		ready: "CA refused the agent's credentials (fix the agent's CA credentials or the CA's policy; waiting will not help)", reachable: 1,
		log: `level=ERROR msg="CA refused the agent; cached SVIDs are still served, but none is renewed until an operator fixes the agent's CA credentials or the CA's policy" error="vault: sign: ca: refused"`},
	{name: "a refusal is never an outage, whatever else it wraps", err: errors.Join(ca.ErrUnavailable, ca.ErrRefused),
		ready: "CA refused the agent's credentials (fix the agent's CA credentials or the CA's policy; waiting will not help)", reachable: 1},
	{name: "accepted again", err: nil, reachable: 1, log: `level=INFO msg="CA accepts the agent again"`},
	{name: "the request's fault is an answer", err: fmt.Errorf("vault: %w", ca.ErrInvalidRequest), reachable: 1},
	{name: "issuer too short", err: fmt.Errorf("vault ca: %w: Vault's issuer r1 expires at T", ca.ErrExpired),
		ready: readyExpiredText, reachable: 1,
		log: `level=ERROR msg="CA cannot cover a full SVID lifetime; cached SVIDs are still served until they expire, but none is renewed until an operator rotates the CA or lowers svid.ttl" error="vault ca: ca: CA cannot cover a full SVID lifetime: Vault's issuer r1 expires at T"`},
	{name: "a later call that reports it again logs nothing", err: fmt.Errorf("cache: issue: %w", ca.ErrExpired),
		ready: readyExpiredText, reachable: 1},
	{name: "an expired CA is never an outage, whatever else it wraps", err: errors.Join(ca.ErrUnavailable, ca.ErrExpired),
		ready: readyExpiredText, reachable: 1},
	{name: "outage after an expired CA", err: fmt.Errorf("vault: %w", ca.ErrUnavailable),
		ready: "CA unreachable", reachable: 0, log: `level=ERROR msg="CA unreachable; cached SVIDs are still served" error="vault: ca: unavailable"`},
	{name: "expired again", err: fmt.Errorf("vault ca: %w", ca.ErrExpired), ready: readyExpiredText, reachable: 1,
		log: `level=ERROR msg="CA cannot cover a full SVID lifetime; cached SVIDs are still served until they expire, but none is renewed until an operator rotates the CA or lowers svid.ttl" error="vault ca: ca: CA cannot cover a full SVID lifetime"`},
	{name: "rotated", err: nil, reachable: 1, log: `level=INFO msg="CA covers a full SVID lifetime again"`},
}

// readyExpiredText is spelled out, not taken from the code, so a change
// to what operators read on /ready shows here.
const readyExpiredText = "CA cannot cover a full SVID lifetime: it has expired or expires too soon (rotate the CA or lower svid.ttl; waiting will not help)"

// A refusal (the CA answered and turned the agent away), an expired CA
// (one that cannot cover a full SVID lifetime) and an outage are told
// apart on /ready, in the log and in sworn_ca_reachable: an operator must
// fix credentials for the first, rotate the CA for the second, and wait
// (or fix the network) for the last.
func TestObserveCATellsARefusalFromAnOutage(t *testing.T) {
	var logs bytes.Buffer
	a := &Agent{
		log:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		metrics: telemetry.New(),
	}
	a.listening.Store(true)
	for _, step := range caHealthSteps {
		logs.Reset()
		a.observeCA(step.err)
		got := ""
		if err := a.readiness(); err != nil {
			got = err.Error()
		}
		if got != step.ready {
			t.Errorf("%s: /ready says %q, want %q", step.name, got, step.ready)
		}
		if v := gauge(t, a.metrics, "sworn_ca_reachable"); v != step.reachable {
			t.Errorf("%s: sworn_ca_reachable = %v, want %v", step.name, v, step.reachable)
		}
		if line := strings.TrimSpace(logs.String()); line != step.log {
			t.Errorf("%s: logged %q, want %q", step.name, line, step.log)
		}
	}
}

func dropTime(_ []string, attr slog.Attr) slog.Attr {
	if attr.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return attr
}

func gauge(t *testing.T, m *telemetry.Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// flakySigner is the embedded CA on a fake clock that fails as an outage
// while failing is set.
type flakySigner struct {
	ca      *local.CA
	failing atomic.Bool
	calls   atomic.Int32
}

func (s *flakySigner) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	s.calls.Add(1)
	if s.failing.Load() {
		return nil, fmt.Errorf("test: %w", ca.ErrUnavailable)
	}
	return s.ca.SignX509SVID(ctx, req)
}

// TestFailedRenewalsAreRetriedWhenTheCAReturns: once the CA answers again
// (here a backend's health probe says so, as Vault's bundle refresh does),
// an SVID that expired during the outage is renewed at once, not after its
// backoff (up to an hour here; the fake clock never moves).
func TestFailedRenewalsAreRetriedWhenTheCAReturns(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	lc, err := local.New(local.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	signer := &flakySigner{ca: lc}
	a := &Agent{log: slog.New(slog.DiscardHandler), metrics: telemetry.New()}
	a.cache = cache.New(cache.Config{Signer: signer, Clock: clk, Metrics: a.metrics, OnCAResult: a.observeCA,
		Backoff: rotation.Backoff{Initial: time.Hour, Max: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.cache.Run(ctx) })
	wg.Go(func() { a.retryWhenCAReturns(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	e := registry.Entry{ID: spiffeid.RequireFromString("spiffe://example.org/web"), TTL: 2 * time.Minute}
	sub, err := a.cache.Subscribe(ctx, []registry.Entry{e}, cache.Requester{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	old := sub.SVIDs()[0]
	signer.failing.Store(true)
	clk.Step(5 * time.Minute)
	testutil.Eventually(t, "the renewal to fail and wait out its backoff", func() bool {
		ids := a.cache.Identities()
		return signer.calls.Load() >= 2 && ids[0].NextRenewal.After(clk.Now())
	})
	if caState(a.caState.Load()) != caUnreachable {
		t.Fatal("the failed renewal did not mark the CA unreachable")
	}
	signer.failing.Store(false)
	a.observeCA(nil)
	testutil.Eventually(t, "the expired SVID to be renewed without the clock moving", func() bool {
		got := sub.SVIDs() // the expired one is left out until renewed
		return len(got) == 1 && got[0] != old
	})
}
