package vault_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
)

// requireRefused fails unless err is a refusal and not an outage: the two
// classes ask for different remedies (fix the policy or credentials, or
// wait), so one must never pass for the other.
func requireRefused(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ca.ErrRefused) || errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("%s: %v, want ca.ErrRefused and not ca.ErrUnavailable", what, err)
	}
}

func TestTokenWithoutPolicyIsRefusedNotUnavailable(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{})
	// A valid token whose policy grants nothing on the PKI mount.
	tok, err := srv.Client.Auth().Token().CreateWithContext(context.Background(), &api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{TokenFile: tokenFile(t, tok.Auth.ClientToken)}})
	requireRefused(t, "Health after reading the issuers without permission", c.Health())

	// The first 403 is taken for an expired token: exactly one fresh
	// login, then the 403 to the retried call is the refusal.
	before := c.Logins()
	_, err = sign(t, c, "/web")
	requireRefused(t, "sign without permission", err)
	if got := c.Logins(); got != before+1 {
		t.Fatalf("logins %d -> %d, want one re-login before the refusal", before, got)
	}
}

func TestAppRoleWithAWrongSecretIDIsRefused(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{AuthMethod: vault.AuthAppRole})
	roleID, err := srv.Client.Logical().ReadWithContext(context.Background(), "auth/approle/role/sworn-agent/role-id")
	if err != nil {
		t.Fatal(err)
	}
	c := newCA(t, vault.Config{Address: srv.Addr, Auth: vault.Auth{
		Method: vault.AuthAppRole, RoleID: roleID.Data["role_id"].(string),
		SecretIDFile: tokenFile(t, "00000000-0000-0000-0000-000000000000"),
	}})
	requireRefused(t, "Health after a login with a wrong secret ID", c.Health())
	if c.Logins() != 0 {
		t.Fatalf("%d logins with a wrong secret ID", c.Logins())
	}
	_, err = sign(t, c, "/web")
	requireRefused(t, "sign while the login is refused", err)
}
