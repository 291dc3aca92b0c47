package vault_test

import (
	"context"
	"crypto/x509"
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
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// setup starts Vault and runs the same setup as `sworn vault setup`.
func setup(t *testing.T, o vault.SetupOptions) (*vaulttest.Server, *vault.Admin) {
	t.Helper()
	srv := vaulttest.Start(t)
	admin := vault.NewAdmin(srv.Client, "", "")
	o.TrustDomain = td
	if _, err := admin.Setup(context.Background(), o); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return srv, admin
}

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := writeFile(p, token+"\n"); err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t *testing.T, cfg vault.Config) *vault.CA {
	t.Helper()
	cfg.TrustDomain = td
	c, err := vault.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	return c
}

// sign asks for a 1h SVID.
func sign(t *testing.T, c ca.Authority, path string, dns ...string) ([]*x509.Certificate, error) {
	t.Helper()
	return signFor(t, c, path, time.Hour, dns...)
}

func signFor(t *testing.T, c ca.Authority, path string, ttl time.Duration, dns ...string) ([]*x509.Certificate, error) {
	t.Helper()
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, path), Key: key, TTL: ttl, DNSNames: dns})
}

func verify(t *testing.T, c ca.Authority, chain []*x509.Certificate, path string) {
	t.Helper()
	bundle := x509bundle.FromX509Authorities(td, c.Authorities().X509)
	id, _, err := x509svid.Verify(chain, bundle)
	if err != nil || id.Path() != path {
		t.Fatalf("x509svid.Verify against Vault's issuers = %v, %v", id, err)
	}
	if err := ca.CheckX509SVID(chain, id, c.Authorities().X509, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestSetupIsIdempotent(t *testing.T) {
	srv, admin := setup(t, vault.SetupOptions{})
	did, err := admin.Setup(context.Background(), vault.SetupOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(did, "\n"), "already at pki/") || !strings.Contains(strings.Join(did, "\n"), "using the 1 existing issuer") {
		t.Fatalf("second setup did not reuse the mount and root:\n%s", strings.Join(did, "\n"))
	}
	iss, err := admin.Issuers(context.Background())
	if err != nil || len(iss) != 1 || !iss[0].Default {
		t.Fatalf("issuers after two setups: %v, %v", iss, err)
	}
	_ = srv
}

func TestSignModeIssuesProfileConformingSVIDs(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{AllowedDNSDomains: []string{"svc.example.org"}})
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})

	chain, err := sign(t, c, "/web", "api.svc.example.org")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, c, chain, "/web")
	leaf := chain[0]
	if len(chain) != 1 || leaf.DNSNames[0] != "api.svc.example.org" || leaf.Subject.CommonName != "" {
		t.Fatalf("chain %d long, DNS %v, CN %q", len(chain), leaf.DNSNames, leaf.Subject.CommonName)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < time.Hour || got > time.Hour+time.Minute {
		t.Fatalf("lifetime %v, want the requested 1h (plus Vault's backdate)", got)
	}

	if _, err := sign(t, c, "/web", "evil.example.com"); !errors.Is(err, ca.ErrInvalidRequest) {
		t.Fatalf("DNS name outside the allowed domains: %v, want ErrInvalidRequest", err)
	}
}

func TestMisconfiguredRoleNeverYieldsAnSVID(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{})
	// An operator "simplifies" the role: server certificates only.
	if _, err := srv.Client.Logical().JSONMergePatch(context.Background(), "pki/roles/sworn", map[string]any{"client_flag": false}); err != nil {
		t.Fatal(err)
	}
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	_, err := sign(t, c, "/web")
	if !errors.Is(err, ca.ErrBadCertificate) || !strings.Contains(err.Error(), "clientAuth") {
		t.Fatalf("sign with a server-only role: %v, want ErrBadCertificate naming clientAuth", err)
	}
}

func TestIntermediateModeSignsLocallyUnderAConstrainedIntermediate(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{Intermediate: true})
	c := newCA(t, vault.Config{Address: srv.Addr, Mode: vault.ModeIntermediate, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	chain, err := sign(t, c, "/web")
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(chain))
	}
	verify(t, c, chain, "/web")
	inter := chain[1]
	if !inter.IsCA || !inter.MaxPathLenZero || inter.URIs[0].String() != "spiffe://example.org" {
		t.Fatalf("intermediate: isCA=%v pathlen0=%v uris=%v", inter.IsCA, inter.MaxPathLenZero, inter.URIs)
	}
	if len(inter.PermittedURIDomains) != 1 || inter.PermittedURIDomains[0] != "example.org" {
		t.Fatalf("intermediate URI name constraints %v, want [example.org]", inter.PermittedURIDomains)
	}
	if inter.NotAfter.Sub(inter.NotBefore) > vault.DefaultIntermediateTTL+time.Minute {
		t.Fatalf("intermediate lives %v, want at most %v", inter.NotAfter.Sub(inter.NotBefore), vault.DefaultIntermediateTTL)
	}
}

func TestTLSToVaultIsVerifiedWithCACertFile(t *testing.T) {
	srv := vaulttest.StartTLS(t)
	if _, err := vault.NewAdmin(srv.Client, "", "").Setup(context.Background(), vault.SetupOptions{TrustDomain: td}); err != nil {
		t.Fatal(err)
	}
	token := tokenFile(t, vaulttest.RootToken)

	c := newCA(t, vault.Config{Address: srv.Addr, CACertFile: srv.CACertFile, Auth: vault.Auth{TokenFile: token}})
	if _, err := sign(t, c, "/tls"); err != nil {
		t.Fatalf("sign over verified TLS: %v", err)
	}

	// Without the CA file the server's certificate is not trusted: the
	// agent starts, but cannot sign, and says why.
	t.Setenv("VAULT_CACERT", "")
	untrusting := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{TokenFile: token}})
	_, err := sign(t, untrusting, "/tls")
	if !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("sign without ca_cert_file: %v, want an unavailable CA with a certificate error", err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func TestIntermediateIsRenewedAtHalfLife(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{Intermediate: true})
	clk := clocktesting.NewFakeClock(time.Now())
	c := newCA(t, vault.Config{Address: srv.Addr, Mode: vault.ModeIntermediate, IntermediateTTL: 2 * time.Hour,
		BundleRefresh: time.Minute, Clock: clk, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	runCA(t, c)
	// 30m SVIDs: Vault dates each intermediate from its real clock, so
	// the one renewed at fake minute 62 has only 58 fake minutes left,
	// and an intermediate never signs an SVID it cannot cover in full.
	sign := func(t *testing.T, c ca.Authority, path string) ([]*x509.Certificate, error) {
		t.Helper()
		return signFor(t, c, path, 30*time.Minute)
	}
	first, err := sign(t, c, "/web")
	if err != nil {
		t.Fatal(err)
	}

	// Before half life, refreshes keep the intermediate.
	testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
	clk.Step(time.Minute)
	testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
	if again, _ := sign(t, c, "/web"); !again[1].Equal(first[1]) {
		t.Fatal("intermediate renewed before half its life")
	}

	clk.Step(61 * time.Minute)
	testutil.Eventually(t, "a new intermediate", func() bool {
		next, err := sign(t, c, "/web")
		return err == nil && !next[1].Equal(first[1])
	})
}

func TestTransitSignsJWTSVIDsAndPublishesRotatedKeysFirst(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{JWTTransitKey: "sworn-jwt"})
	// Behind real time, so the fake minutes stepped below keep iat in the
	// past for go-spiffe's real-time check.
	clk := clocktesting.NewFakeClock(time.Now().Add(-5 * time.Minute))
	c := newCA(t, vault.Config{Address: srv.Addr, Clock: clk, BundleRefresh: time.Minute,
		JWT: vault.JWTConfig{Key: "sworn-jwt"}, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	runCA(t, c)
	id := spiffeid.RequireFromPath(td, "/web")
	sign := func() string {
		t.Helper()
		token, _, err := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: id, Audience: []string{"db"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, c.Authorities().JWT), []string{"db"}); err != nil {
			t.Fatalf("go-spiffe refuses a transit-signed token: %v", err)
		}
		return strings.Split(token, ".")[0]
	}
	first := sign()

	if _, err := srv.Client.Logical().Write("transit/keys/sworn-jwt/rotate", nil); err != nil {
		t.Fatal(err)
	}
	changed := c.Changed()
	testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
	clk.Step(time.Minute)
	<-changed
	if n := len(c.Authorities().JWT); n != 2 {
		t.Fatalf("%d keys in the JWKS after rotation, want 2", n)
	}
	if sign() != first {
		t.Fatal("the rotated key signed before agents had time to publish it")
	}
	for range 2 {
		testutil.Eventually(t, "the refresh timer", clk.HasWaiters)
		clk.Step(time.Minute)
	}
	testutil.Eventually(t, "the new key to sign", func() bool { return sign() != first })
}

func TestTransitSignatureByAnotherKeyIsBadSignature(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{JWTTransitKey: "sworn-jwt"})
	c := newCA(t, vault.Config{Address: srv.Addr, JWT: vault.JWTConfig{Key: "sworn-jwt"},
		Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	// An operator deletes the key and creates another under the same name
	// before the backend re-read it: Vault now signs version 1 with a key
	// whose public half no agent has published.
	ctx := context.Background()
	for _, step := range []struct {
		path string
		data map[string]any
	}{
		{"transit/keys/sworn-jwt/config", map[string]any{"deletion_allowed": true}},
		{"transit/keys/sworn-jwt", nil},
		{"transit/keys/sworn-jwt", map[string]any{"type": "ecdsa-p256"}},
	} {
		var err error
		if step.data == nil {
			_, err = srv.Client.Logical().DeleteWithContext(ctx, step.path)
		} else {
			_, err = srv.Client.Logical().WriteWithContext(ctx, step.path, step.data)
		}
		if err != nil {
			t.Fatalf("%s: %v", step.path, err)
		}
	}
	token, _, err := c.SignJWTSVID(ctx, ca.JWTSVIDRequest{ID: spiffeid.RequireFromPath(td, "/web"), Audience: []string{"db"}, TTL: time.Hour})
	if !errors.Is(err, ca.ErrBadSignature) || token != "" {
		t.Fatalf("sign with a re-created transit key: token %q, %v; want no token and ca.ErrBadSignature", token, err)
	}
}
