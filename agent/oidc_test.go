package agent_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// serverCert writes a certificate for 127.0.0.1 issued by ca into dir and
// returns the cert and key file paths.
func serverCert(t *testing.T, ca *testutil.Cert, dir string) (string, string) {
	t.Helper()
	leaf := ca.Issue(t, &x509.Certificate{
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	})
	certFile, keyFile := filepath.Join(dir, "oidc.crt"), filepath.Join(dir, "oidc.key")
	if err := os.WriteFile(certFile, leaf.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// oidcAgent runs an agent with the embedded CA serving OIDC discovery over
// HTTPS with a certificate from ca, and iss in its JWT-SVIDs.
func oidcAgent(t *testing.T, ca *testutil.Cert) (*testAgent, string) {
	t.Helper()
	cfg := newConfig(t)
	addr := testutil.FreeAddr(t)
	certFile, keyFile := serverCert(t, ca, t.TempDir())
	cfg.OIDC = config.OIDC{Enabled: true, Issuer: "https://" + addr, Listen: addr,
		CertFile: certFile, KeyFile: keyFile, JWTIssuerClaim: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return startAgent(t, cfg), cfg.OIDC.Issuer
}

func fetchJWT(t *testing.T, a *testAgent, audience string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience}, workloadapi.WithAddr(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	return svid.Marshal()
}

// vaultJWTAuth enables Vault's JWT auth method with OIDC discovery at
// issuer and a role for id with audience "vault".
func vaultJWTAuth(t *testing.T, srv *vaulttest.Server, issuer string, caPEM []byte, id spiffeid.ID) {
	t.Helper()
	if err := srv.Client.Sys().EnableAuthWithOptions("jwt", &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	// bound_issuer makes Vault check iss, as AWS STS and GCP always do.
	if _, err := srv.Client.Logical().Write("auth/jwt/config", map[string]any{
		"oidc_discovery_url": issuer, "oidc_discovery_ca_pem": string(caPEM), "bound_issuer": issuer,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Logical().Write("auth/jwt/role/web", map[string]any{
		"role_type": "jwt", "user_claim": "sub", "bound_audiences": []string{"vault"},
		"bound_subject": id.String(), "token_policies": []string{"default"}, "token_ttl": "5m",
	}); err != nil {
		t.Fatal(err)
	}
}

func vaultLogin(t *testing.T, srv *vaulttest.Server, token string) (*api.Secret, error) {
	t.Helper()
	c, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c.Logical().Write("auth/jwt/login", map[string]any{"role": "web", "jwt": token})
}

func TestVaultJWTAuthAcceptsJWTSVIDsThroughOIDCDiscovery(t *testing.T) {
	ca := testutil.NewCA(t, nil)
	a, issuer := oidcAgent(t, ca)
	srv := vaulttest.Start(t)
	id := spiffeid.RequireFromPath(td, "/uid/"+strconv.Itoa(os.Getuid()))
	vaultJWTAuth(t, srv, issuer, ca.CertPEM(), id)

	secret, err := vaultLogin(t, srv, fetchJWT(t, a, "vault"))
	if err != nil {
		t.Fatalf("Vault refused a JWT-SVID for its audience: %v", err)
	}
	if secret.Auth == nil || secret.Auth.ClientToken == "" || secret.Auth.Metadata["role"] != "web" {
		t.Fatalf("login answered %+v, want a token of role web", secret.Auth)
	}
	if _, err := vaultLogin(t, srv, fetchJWT(t, a, "other")); err == nil || !strings.Contains(err.Error(), "aud") {
		t.Fatalf("a JWT-SVID for another audience: %v, want a refusal naming aud", err)
	}
}
