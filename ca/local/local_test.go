package local_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

var (
	td = spiffeid.RequireTrustDomainFromString("example.org")
	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func newCA(t *testing.T, cfg local.Config) *local.CA {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = td
	}
	c, err := local.New(cfg)
	if err != nil {
		t.Fatalf("local.New: %v", err)
	}
	return c
}

func sign(t *testing.T, c *local.CA, id spiffeid.ID, ttl time.Duration) []*x509.Certificate {
	t.Helper()
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: ttl})
	if err != nil {
		t.Fatalf("SignX509SVID: %v", err)
	}
	return chain
}

func TestSignedSVIDFollowsProfileAndVerifiesWithGoSpiffe(t *testing.T) {
	for _, kt := range ca.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			c := newCA(t, local.Config{KeyType: kt})
			id := spiffeid.RequireFromString("spiffe://example.org/uid/1000")
			key, err := kt.Generate()
			if err != nil {
				t.Fatal(err)
			}
			chain, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour, DNSNames: []string{"api.local"}})
			if err != nil {
				t.Fatal(err)
			}
			roots := c.Authorities().X509
			if err := ca.CheckX509SVID(chain, id, roots, time.Now()); err != nil {
				t.Fatal(err)
			}
			bundle := x509bundle.FromX509Authorities(td, roots)
			gotID, _, err := x509svid.Verify(chain, bundle)
			if err != nil || gotID != id {
				t.Fatalf("x509svid.Verify = %v, %v", gotID, err)
			}
			if got := chain[0].NotAfter.Sub(chain[0].NotBefore); got != time.Hour+10*time.Second {
				t.Fatalf("lifetime %v, want 1h plus the 10s backdate", got)
			}
			if chain[0].DNSNames[0] != "api.local" {
				t.Fatalf("DNS names %v", chain[0].DNSNames)
			}
			root := roots[0]
			if !root.IsCA || root.KeyUsage&x509.KeyUsageCertSign == 0 || root.URIs[0].String() != "spiffe://example.org" {
				t.Fatalf("CA certificate breaks the profile: isCA=%v usage=%v uris=%v", root.IsCA, root.KeyUsage, root.URIs)
			}
		})
	}
}

func TestSignRefusesBadRequests(t *testing.T) {
	c := newCA(t, local.Config{})
	key, _ := ca.KeyECP256.Generate()
	tests := []struct {
		name string
		req  ca.X509SVIDRequest
	}{
		{name: "other trust domain", req: ca.X509SVIDRequest{ID: spiffeid.RequireFromString("spiffe://other.org/x"), Key: key, TTL: time.Hour}},
		{name: "zero id", req: ca.X509SVIDRequest{Key: key, TTL: time.Hour}},
		{name: "no ttl", req: ca.X509SVIDRequest{ID: spiffeid.RequireFromString("spiffe://example.org/x"), Key: key}},
		{name: "no key", req: ca.X509SVIDRequest{ID: spiffeid.RequireFromString("spiffe://example.org/x"), TTL: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SignX509SVID(context.Background(), tt.req)
			if !errors.Is(err, ca.ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestSVIDNeverOutlivesCA(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	c := newCA(t, local.Config{Clock: clk, TTL: 2 * time.Hour})
	clk.SetTime(t0.Add(90 * time.Minute))
	chain := sign(t, c, spiffeid.RequireFromString("spiffe://example.org/a"), time.Hour)
	caNotAfter := c.Authorities().X509[0].NotAfter
	if !chain[0].NotAfter.Equal(caNotAfter) {
		t.Fatalf("leaf NotAfter %v, want the CA's %v", chain[0].NotAfter, caNotAfter)
	}
}

func TestPersistedCAIsReusedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	first := newCA(t, local.Config{Dir: dir})
	before := first.Authorities()

	files, _ := filepath.Glob(filepath.Join(dir, "ca-*.pem"))
	if len(files) != 1 {
		t.Fatalf("want one CA file, got %v", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file mode %v, want 0600", fi.Mode().Perm())
	}

	second := newCA(t, local.Config{Dir: dir})
	after := second.Authorities()
	if after.Signing != before.Signing || !after.X509[0].Equal(before.X509[0]) {
		t.Fatal("restart created a new CA instead of reusing the persisted one")
	}
}

func TestLoadRefusesLooseKeyFileAndOtherTrustDomain(t *testing.T) {
	dir := t.TempDir()
	newCA(t, local.Config{Dir: dir})

	if _, err := local.New(local.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), Dir: dir}); err == nil || !strings.Contains(err.Error(), "not spiffe://other.org") {
		t.Fatalf("loading another trust domain's CA: err = %v", err)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "ca-*.pem"))
	if err := os.Chmod(files[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := local.New(local.Config{TrustDomain: td, Dir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loading a world-readable key: err = %v", err)
	}
}

func TestAutomaticRotationKeepsOverlap(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	dir := t.TempDir()
	c := newCA(t, local.Config{Clock: clk, TTL: 60 * time.Hour, Dir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	first := c.Authorities()
	step := func(d time.Duration) ca.Authorities {
		t.Helper()
		changed := c.Changed()
		testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
		clk.Step(d)
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change after stepping %v", d)
		}
		return c.Authorities()
	}

	// Half life: a successor is published but does not sign.
	prepared := step(30 * time.Hour)
	if len(prepared.X509) != 2 || prepared.Signing != first.Signing {
		t.Fatalf("at half life: %d CAs, signing changed=%v; want 2 CAs, same signer", len(prepared.X509), prepared.Signing != first.Signing)
	}
	// Five sixths: the successor signs, the old CA is still trusted.
	activated := step(20 * time.Hour)
	if len(activated.X509) != 2 || activated.Signing == first.Signing {
		t.Fatalf("at 5/6 life: %d CAs, signing changed=%v; want 2 CAs, new signer", len(activated.X509), activated.Signing != first.Signing)
	}
	leaf := sign(t, c, spiffeid.RequireFromString("spiffe://example.org/a"), time.Hour)[0]
	if err := leaf.CheckSignatureFrom(activated.X509[1]); err != nil {
		t.Fatalf("new SVID is not signed by the new CA: %v", err)
	}
	// Until its NotAfter the old CA stays trusted; then it is dropped from
	// the bundle and from disk. Wait for the maintenance loop to block on
	// the clock, step, and wait until it has run at the new time and
	// blocked again: only then does the check see what maintenance did.
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	clk.Step(10*time.Hour - time.Minute)
	testutil.Eventually(t, "the maintenance loop to wait on the clock", clk.HasWaiters)
	if got := c.Authorities(); !got.X509[0].Equal(first.X509[0]) {
		t.Fatal("old CA dropped before its NotAfter")
	}
	retired := step(time.Minute)
	for _, cert := range retired.X509 {
		if cert.Equal(first.X509[0]) {
			t.Fatal("expired CA still in the bundle")
		}
	}
	if retired.Signing != activated.Signing {
		t.Fatal("signing CA changed when the old one expired")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "ca-*.pem"))
	if len(files) != len(retired.X509) {
		t.Fatalf("expired CA file not removed: %v", files)
	}
}

func TestManualRotation(t *testing.T) {
	c := newCA(t, local.Config{})
	if _, err := c.ActivateCA(context.Background()); !errors.Is(err, ca.ErrInvalidRequest) {
		t.Fatalf("ActivateCA with nothing prepared: err = %v", err)
	}
	before := c.Authorities()
	changed := c.Changed()
	p, err := c.PrepareCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-changed
	again, _ := c.PrepareCA(context.Background())
	if again.ID != p.ID {
		t.Fatal("a second PrepareCA made another CA instead of returning the prepared one")
	}
	if got := c.Authorities(); len(got.X509) != 2 || got.Signing != before.Signing {
		t.Fatal("prepared CA must be trusted but not signing")
	}
	if _, err := c.ActivateCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	infos, _ := c.DescribeCAs(context.Background())
	if len(infos) != 2 || infos[0].State != ca.StateOld || infos[1].State != ca.StateActive || infos[1].ID != p.ID {
		t.Fatalf("states after activation: %+v", infos)
	}
}

func TestJWTSVIDsValidateWithGoSpiffeAndRotateWithTheCA(t *testing.T) {
	c := newCA(t, local.Config{})
	id := spiffeid.RequireFromString("spiffe://example.org/web")
	token, exp, err := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: id, Audience: []string{"db", "cache"}, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	bundle := jwtbundle.FromJWTAuthorities(td, c.Authorities().JWT)
	svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"cache"})
	if err != nil || svid.ID != id || !svid.Expiry.Equal(exp) {
		t.Fatalf("ParseAndValidate = %+v, %v", svid, err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h map[string]any
	_ = json.Unmarshal(header, &h)
	if len(h) != 3 || h["alg"] != "ES256" || h["typ"] != "JWT" || h["kid"] == "" {
		t.Fatalf("header %v, want only alg ES256, kid and typ JWT", h)
	}

	if _, err := c.PrepareCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Authorities().JWT); n != 2 {
		t.Fatalf("%d JWT keys after prepare, want the next one published too", n)
	}
	before := strings.Split(token, ".")[0]
	again, _, _ := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: id, Audience: []string{"db"}, TTL: time.Minute})
	if strings.Split(again, ".")[0] != before {
		t.Fatal("a prepared key signed before activation")
	}
	if _, err := c.ActivateCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _, _ := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: id, Audience: []string{"db"}, TTL: time.Minute})
	if strings.Split(after, ".")[0] == before {
		t.Fatal("the activated period's key does not sign")
	}
	if _, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, c.Authorities().JWT), []string{"db"}); err != nil {
		t.Fatalf("a token of the previous key no longer validates: %v", err)
	}
}
