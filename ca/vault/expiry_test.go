package vault_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/rotation"
)

// signCounter is an HTTP proxy in front of the real Vault that counts the
// sign requests reaching it.
type signCounter struct {
	Addr  string
	signs atomic.Int64
}

func countSigns(t *testing.T, target string) *signCounter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	sc := &signCounter{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/pki/sign/") {
			sc.signs.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	sc.Addr = srv.URL
	return sc
}

// shortRoot sets Vault up with a root that lives rootTTL from now and
// returns a backend on clk that reports its health to the returned log.
func shortRoot(t *testing.T, rootTTL time.Duration, clk *clocktesting.FakeClock) (*vault.CA, *signCounter, vault.Issuer, *testutil.ErrorLog) {
	t.Helper()
	srv, admin := setup(t, vault.SetupOptions{RootTTL: rootTTL})
	iss, err := admin.Issuers(context.Background())
	if err != nil || len(iss) != 1 {
		t.Fatalf("issuers: %v, %v", iss, err)
	}
	counter := countSigns(t, srv.Addr)
	health := &testutil.ErrorLog{}
	c := newCA(t, vault.Config{Address: counter.Addr, Clock: clk, BundleRefresh: time.Second, OnHealth: health.Add,
		Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	return c, counter, iss[0], health
}

func issuerName(i vault.Issuer) string {
	return fmt.Sprintf("Vault's issuer %s (serial %s)", i.Name, i.Certificate.SerialNumber.Text(16))
}

// requireExpired fails unless err is ca.ErrExpired, no other class, and
// its text is exactly want.
func requireExpired(t *testing.T, what string, err error, want string) {
	t.Helper()
	for _, other := range []error{ca.ErrUnavailable, ca.ErrRefused, ca.ErrBadCertificate, ca.ErrInvalidRequest} {
		if errors.Is(err, other) {
			t.Fatalf("%s: %v is also %v", what, err, other)
		}
	}
	if !errors.Is(err, ca.ErrExpired) || err.Error() != want {
		t.Fatalf("%s:\n got %v\nwant %s", what, err, want)
	}
}

// An issuer that cannot cover a full SVID lifetime is detected before
// Vault is asked: Vault would cap the SVID at the issuer's end (and
// backdate it 30s), so every renewal would come due at once. The error
// names the issuer and the fix, Health keeps saying so across refreshes,
// and after the issuer's end it says "expired", not "check the role".
func TestIssuerThatCannotCoverAnSVIDIsRefusedBeforeVaultIsAsked(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	c, counter, root, health := shortRoot(t, 20*time.Second, clk)
	runCA(t, c)
	end := root.Certificate.NotAfter.UTC().Format(time.RFC3339)
	rotate := "rotate Vault's issuer (`sworn vault ca rotate`, then `sworn vault ca activate`, or vault write pki/root/rotate/internal)"

	_, err := sign(t, c, "/web") // 1h
	requireExpired(t, "sign a 1h SVID under a root with 20s left", err,
		"vault ca: ca: CA cannot cover a full SVID lifetime: "+issuerName(root)+" expires at "+end+", before a full 1h0m0s SVID; "+rotate+" or lower svid.ttl")
	if n := counter.signs.Load(); n != 0 {
		t.Fatalf("%d sign requests reached Vault, want none", n)
	}
	if !errors.Is(c.Health(), ca.ErrExpired) {
		t.Fatalf("Health = %v, want ca.ErrExpired", c.Health())
	}

	// A refresh that reads the same short issuer must not report a
	// healthy CA in between: /ready would flap.
	seen := health.Len()
	testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
	clk.Step(time.Second)
	testutil.Eventually(t, "a refresh to report", func() bool { return health.Len() > seen })
	for _, h := range health.Since(seen) {
		if !errors.Is(h, ca.ErrExpired) {
			t.Fatalf("a refresh reported %v while the issuer still cannot cover a 1h SVID", h)
		}
	}

	clk.SetTime(root.Certificate.NotAfter.Add(time.Second))
	_, err = sign(t, c, "/web")
	requireExpired(t, "sign after the root's end", err,
		"vault ca: ca: CA cannot cover a full SVID lifetime: "+issuerName(root)+" expired at "+end+"; "+rotate)
	if n := counter.signs.Load(); n != 0 {
		t.Fatalf("%d sign requests reached Vault, want none", n)
	}
}

// callCounter renews keys with the backend, as the agent's cache does,
// and counts the calls.
type callCounter struct {
	c              *vault.CA
	started, ended atomic.Int64
}

func (cc *callCounter) Renew(ctx context.Context, key string) (rotation.Validity, error) {
	cc.started.Add(1)
	defer cc.ended.Add(1)
	k, err := ca.KeyECP256.Generate()
	if err != nil {
		return rotation.Validity{}, err
	}
	chain, err := cc.c.SignX509SVID(ctx, ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, "/"+key), Key: k, TTL: time.Minute})
	if err != nil {
		return rotation.Validity{}, err
	}
	return validityOf(chain[0]), nil
}

func validityOf(c *x509.Certificate) rotation.Validity {
	return rotation.Validity{NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// Renewals under an issuer in its last seconds back off instead of
// looping: driven by rotation's scheduler (as the agent's cache is) on a
// fake clock, ten identities are tried no more often than the backoff
// allows, and no sign request reaches Vault. Before the check, Vault
// signed SVIDs capped at the issuer's end and backdated 30s, each due for
// renewal the moment it arrived: the calls ran as fast as Vault answered.
func TestRenewalsUnderAnExpiringIssuerBackOff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	c, counter, _, _ := shortRoot(t, 20*time.Second, clk)
	cc := &callCounter{c: c}
	const identities, window, step = 10, 5 * time.Second, 100 * time.Millisecond
	backoff := rotation.Backoff{Initial: time.Second, Max: time.Minute} // the agent's
	s := rotation.New(rotation.Config{Renewer: cc, Backoff: backoff, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	now := clk.Now()
	for i := range identities {
		// The SVIDs held now are past half their life: due at once.
		s.Track(fmt.Sprintf("w%d", i), rotation.Validity{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(15 * time.Second)})
	}
	// Each failed attempt waits at least Initial/2 on the fake clock, so
	// no identity is tried more than 1+window/(Initial/2) times.
	bound := int64(identities * (1 + int(window/(backoff.Initial/2))))
	settled := func() bool {
		return cc.started.Load() > bound || (cc.ended.Load() == cc.started.Load() && clk.HasWaiters())
	}
	// All ten are due now, so each is tried before the clock moves; a
	// renewal the scheduler has dispatched but not yet started is invisible
	// to settled, so wait for the ten first (under load, the loop below
	// could otherwise run its course before they start).
	testutil.Eventually(t, "every identity to be tried once", func() bool { return cc.started.Load() >= identities && settled() })
	for elapsed := time.Duration(0); elapsed <= window; elapsed += step {
		testutil.Eventually(t, "the renewals in flight to end", settled)
		if n := cc.started.Load(); n > bound {
			t.Fatalf("%d renewal calls for %d identities after %v, want at most %d (backoff)", n, identities, elapsed, bound)
		}
		clk.Step(step)
	}
	testutil.Eventually(t, "the renewals in flight to end", settled)
	if n := cc.started.Load(); n < identities || n > bound {
		t.Fatalf("%d renewal calls for %d identities over %v, want between %d and %d", n, identities, window, identities, bound)
	}
	if n := counter.signs.Load(); n != 0 {
		t.Fatalf("%d sign requests reached Vault, want none", n)
	}
	t.Logf("%d renewal calls for %d identities over %v of the issuer's last 20s", cc.started.Load(), identities, window)
}

// In intermediate mode the agent signs with its own intermediate, which
// Vault caps at its issuer's end: the same check applies to both, and the
// error names the one at fault and its fix.
func TestIntermediateThatCannotCoverAnSVIDIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rootTTL time.Duration
		svidTTL time.Duration
		want    func(root vault.Issuer, inter *x509.Certificate) string
	}{{
		name: "Vault's issuer ends first", rootTTL: 20 * time.Second, svidTTL: time.Hour,
		want: func(root vault.Issuer, _ *x509.Certificate) string {
			return "vault ca: ca: CA cannot cover a full SVID lifetime: " + issuerName(root) + " expires at " +
				root.Certificate.NotAfter.UTC().Format(time.RFC3339) + ", before a full 1h0m0s SVID; " +
				"rotate Vault's issuer (`sworn vault ca rotate`, then `sworn vault ca activate`, or vault write pki/root/rotate/internal) or lower svid.ttl"
		},
	}, {
		name: "the intermediate is shorter than the SVID", svidTTL: 2 * time.Hour,
		want: func(_ vault.Issuer, inter *x509.Certificate) string {
			return "vault ca: ca: CA cannot cover a full SVID lifetime: the agent's intermediate (serial " + inter.SerialNumber.Text(16) +
				") expires at " + inter.NotAfter.UTC().Format(time.RFC3339) + ", before a full 2h0m0s SVID; " +
				"it is renewed at half its life, so ca.vault.intermediate_ttl (1h0m0s) must be at least twice svid.ttl"
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, admin := setup(t, vault.SetupOptions{Intermediate: true, RootTTL: tc.rootTTL})
			iss, err := admin.Issuers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c := newCA(t, vault.Config{Address: srv.Addr, Mode: vault.ModeIntermediate, IntermediateTTL: time.Hour,
				Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
			_, err = signFor(t, c, "/web", tc.svidTTL)
			requireExpired(t, "sign", err, tc.want(iss[0], intermediateOf(t, c)))
		})
	}
}

func intermediateOf(t *testing.T, c *vault.CA) *x509.Certificate {
	t.Helper()
	infos, err := c.DescribeCAs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.ID == "intermediate" {
			return i.Certificate
		}
	}
	t.Fatal("no intermediate")
	return nil
}
