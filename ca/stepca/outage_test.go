package stepca_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/stepca/stepcatest"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// A paused step-ca (a proxy that accepts and never answers) is an outage
// for every exchange, bundle refreshes included: each reports
// ca.ErrUnavailable, so /ready does not flap between "unreachable" (a
// sign) and "reachable" (a refresh that timed out). Once it answers again,
// the next refresh says so.
func TestStepCAPausedIsUnavailableForRefreshesToo(t *testing.T) {
	s := stepcatest.Start(t, "")
	proxy := vaulttest.NewProxy(t, s.URL)
	clk := clocktesting.NewFakeClock(time.Now())
	health := &testutil.ErrorLog{}
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: proxy.Addr, RootFile: s.RootFile,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile, BundleRefresh: time.Second, Clock: clk, OnHealth: health.Add})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign(c, "/web"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	proxy.Hang()
	seen := health.Len()
	signCtx, cancelSign := context.WithTimeout(context.Background(), time.Second)
	defer cancelSign()
	key, _ := ca.KeyECP256.Generate()
	_, err = c.SignX509SVID(signCtx, ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, "/web"), Key: key, TTL: time.Hour})
	if !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("sign while step-ca hangs: %v, want ca.ErrUnavailable", err)
	}
	for range 2 { // two refreshes: the state must not flap
		n := health.Len()
		testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
		clk.Step(time.Second)
		testutil.Eventually(t, "a timed-out refresh to report", func() bool { return health.Len() > n })
	}
	for i, h := range health.Since(seen) {
		if !errors.Is(h, ca.ErrUnavailable) {
			t.Fatalf("report %d while step-ca hangs: %v, want ca.ErrUnavailable", i, h)
		}
	}

	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	n := health.Len()
	testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
	clk.Step(time.Second)
	testutil.Eventually(t, "a refresh to report", func() bool { return health.Len() > n })
	if got := health.Since(n); got[len(got)-1] != nil {
		t.Fatalf("refresh after step-ca answers again reported %v, want nil", got[len(got)-1])
	}
}
