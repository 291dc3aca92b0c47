package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestAppRoleLoginRenewalAndRelogin(t *testing.T) {
	// The token lives 2s and can be renewed up to 8s.
	srv, _ := setup(t, vault.SetupOptions{AuthMethod: vault.AuthAppRole, TokenTTL: 2 * time.Second})
	ctx := context.Background()
	roleID, err := srv.Client.Logical().ReadWithContext(ctx, "auth/approle/role/sworn-agent/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID, err := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/role/sworn-agent/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{
		Method:       vault.AuthAppRole,
		RoleID:       roleID.Data["role_id"].(string),
		SecretIDFile: tokenFile(t, secretID.Data["secret_id"].(string)),
	}})
	accessors := approleAccessors(t, srv)
	if len(accessors) != 1 {
		t.Fatalf("%d approle tokens after the first login, want 1", len(accessors))
	}
	first := accessors[0]
	issued := expireTime(t, srv, first)
	runCA(t, c)

	chain, err := sign(t, c, "/approle")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, c, chain, "/approle")

	// Renewal: the same token (same accessor) lives longer than it was
	// issued for. Without renewal it expires at 2s and the lookup fails.
	testutil.Eventually(t, "the first token to be renewed", func() bool { return expireTime(t, srv, first).After(issued) })
	if c.Logins() != 1 {
		t.Fatalf("%d logins before the token's max TTL, want the one token renewed", c.Logins())
	}
	// Re-login: at the max TTL renewal ends and the backend logs in again.
	testutil.Eventually(t, "a second login after the token's max TTL", func() bool { return c.Logins() >= 2 })
	if _, err := sign(t, c, "/approle"); err != nil {
		t.Fatalf("sign after re-login: %v", err)
	}
}

// approleAccessors lists the accessors of the live tokens issued by an
// approle login.
func approleAccessors(t *testing.T, srv *vaulttest.Server) []string {
	t.Helper()
	s, err := srv.Client.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := s.Data["keys"].([]any)
	var out []string
	for _, k := range keys {
		acc, _ := k.(string)
		info, err := srv.Client.Auth().Token().LookupAccessor(acc)
		if err == nil && info.Data["path"] == "auth/approle/login" {
			out = append(out, acc)
		}
	}
	return out
}

// expireTime looks up when the token behind accessor expires; a token that
// is gone fails the test.
func expireTime(t *testing.T, srv *vaulttest.Server, accessor string) time.Time {
	t.Helper()
	info, err := srv.Client.Auth().Token().LookupAccessor(accessor)
	if err != nil {
		t.Fatalf("look up token %s: %v (expired without renewal?)", accessor, err)
	}
	s, _ := info.Data["expire_time"].(string)
	exp, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("token %s expire_time %q: %v", accessor, s, err)
	}
	return exp
}

func TestRevokedTokenTriggersReloginOn403(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{AuthMethod: vault.AuthAppRole})
	ctx := context.Background()
	roleID, _ := srv.Client.Logical().ReadWithContext(ctx, "auth/approle/role/sworn-agent/role-id")
	secretID, _ := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/role/sworn-agent/secret-id", nil)
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{
		Method: vault.AuthAppRole, RoleID: roleID.Data["role_id"].(string),
		SecretIDFile: tokenFile(t, secretID.Data["secret_id"].(string)),
	}})
	// Revoke every token the approle issued, as an operator would after a
	// leak; the next call is refused with 403.
	if _, err := srv.Client.Logical().WriteWithContext(ctx, "sys/leases/revoke-prefix/auth/approle/login", nil); err != nil {
		t.Fatal(err)
	}
	before := c.Logins()
	if _, err := sign(t, c, "/after-revoke"); err != nil {
		t.Fatalf("sign after the token was revoked: %v", err)
	}
	if c.Logins() != before+1 {
		t.Fatalf("logins %d -> %d, want one re-login", before, c.Logins())
	}
}

func TestJWTAuth(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := setup(t, vault.SetupOptions{AuthMethod: vault.AuthJWT, BoundServiceAccount: "sworn/sworn-agent", Audience: "vault"})
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if _, err := srv.Client.Logical().Write("auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))},
	}); err != nil {
		t.Fatal(err)
	}
	token := func(sub string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{
			Subject: sub, Audience: jwt.Audience{"vault"}, Issuer: "https://kubernetes.default.svc",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{
		Method: vault.AuthJWT, Role: "sworn-agent", JWTFile: tokenFile(t, token("system:serviceaccount:sworn:sworn-agent")),
	}})
	chain, err := sign(t, c, "/jwt")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, c, chain, "/jwt")

	// Another service account's token: Vault turns the login away. The
	// backend still starts (an operator may fix the role without a
	// restart) and says it was refused, not that Vault is down.
	intruder := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{
		Method: vault.AuthJWT, Role: "sworn-agent", JWTFile: tokenFile(t, token("system:serviceaccount:default:intruder")),
	}})
	if intruder.Logins() != 0 {
		t.Fatal("a token for another service account logged in")
	}
	requireRefused(t, "Health after the intruder's login", intruder.Health())
}

func TestVaultUnreachableThenBack(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{})
	proxy := vaulttest.NewProxy(t, srv.Addr)
	var health []error
	c := newCA(t, vault.Config{Address: proxy.Addr, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)},
		OnHealth: func(err error) { health = append(health, err) }})
	if _, err := sign(t, c, "/web"); err != nil {
		t.Fatal(err)
	}
	proxy.Down()
	if _, err := sign(t, c, "/web"); !errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrRefused) {
		t.Fatalf("sign with Vault cut off: %v, want ErrUnavailable and not ErrRefused", err)
	}
	if c.Health() == nil {
		t.Fatal("Health() is nil while Vault is unreachable")
	}
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	if _, err := sign(t, c, "/web"); err != nil {
		t.Fatalf("sign after Vault came back: %v", err)
	}
	if c.Health() != nil || health[len(health)-1] != nil {
		t.Fatalf("Health() = %v after recovery", c.Health())
	}
}

func runCA(t *testing.T, c *vault.CA) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
