package vault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// signWithin signs with a deadline, so that a call stuck on a node that
// never answers fails the test instead of hanging it.
func signWithin(t *testing.T, c ca.Authority, d time.Duration) error {
	t.Helper()
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err = c.SignX509SVID(ctx, ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, "/web"), Key: key, TTL: time.Hour})
	return err
}

// Two proxies stand for two nodes of one Vault: which one a call reaches
// is decided by the client's failover alone.
func TestAddressesFailOverToTheNextNodeAndStayThere(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{})
	first, second := vaulttest.NewProxy(t, srv.Addr), vaulttest.NewProxy(t, srv.Addr)
	first.Down()
	c := newCA(t, vault.Config{Addresses: []string{first.Addr, second.Addr}, Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	if err := signWithin(t, c, 5*time.Second); err != nil {
		t.Fatalf("sign with the first address refusing connections: %v", err)
	}

	// The first node comes back but never answers: a client that went
	// back to it would wait out its deadline.
	if err := first.Up(); err != nil {
		t.Fatal(err)
	}
	first.Hang()
	if err := signWithin(t, c, 3*time.Second); err != nil {
		t.Fatalf("sign after failing over: %v (the client went back to the first address)", err)
	}

	// From the last address it wraps around to the first.
	second.Down()
	if err := first.Up(); err != nil {
		t.Fatal(err)
	}
	// A connection to the node that went down may still be pooled: a call
	// on it fails as an outage (it may have reached the node, so it is not
	// re-sent elsewhere), and the next call dials, is refused, and moves on.
	if err := signWithin(t, c, 5*time.Second); err != nil {
		if !errors.Is(err, ca.ErrUnavailable) {
			t.Fatalf("sign on a connection to a node gone down: %v, want ca.ErrUnavailable", err)
		}
		if err := signWithin(t, c, 5*time.Second); err != nil {
			t.Fatalf("sign with only the first address up: %v", err)
		}
	}

	first.Down()
	if err := signWithin(t, c, 5*time.Second); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("sign with every address down: %v, want ca.ErrUnavailable", err)
	}
	if n := c.Logins(); n != 1 {
		t.Fatalf("%d logins, want 1: a failed connection is not a reason to log in again", n)
	}
}

// A renewable token's login renewal goes to the next node too: without
// it the agent would hold a token nobody renews, and lose it at its TTL.
func TestTokenIsKeptAliveThroughTheNextAddress(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{})
	down := vaulttest.NewProxy(t, srv.Addr)
	down.Down()
	s, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{vault.DefaultPolicy}, TTL: "3s"})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	c := newCA(t, vault.Config{Addresses: []string{down.Addr, srv.Addr}, Auth: vault.Auth{TokenFile: tokenFile(t, s.Auth.ClientToken)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	testutil.EventuallyWithin(t, 15*time.Second, "a signed SVID twice the token's TTL after it was created", func() bool {
		return signWithin(t, c, 2*time.Second) == nil && time.Since(created) > 6*time.Second
	})
}
