package vault_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestTransitJWTCarriesIssOnlyWhenAsked(t *testing.T) {
	srv, _ := setup(t, vault.SetupOptions{JWTTransitKey: "sworn-jwt"})
	c := newCA(t, vault.Config{Address: srv.Addr, JWT: vault.JWTConfig{Key: "sworn-jwt"},
		Auth: vault.Auth{TokenFile: tokenFile(t, vaulttest.RootToken)}})
	runCA(t, c)
	id := spiffeid.RequireFromPath(td, "/web")
	tests := []struct {
		name       string
		issuer     string
		wantClaims []string
	}{
		{name: "no issuer", wantClaims: []string{"aud", "exp", "iat", "sub"}},
		{name: "issuer", issuer: "https://oidc.example.org", wantClaims: []string{"aud", "exp", "iat", "iss", "sub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, _, err := c.SignJWTSVID(context.Background(), ca.JWTSVIDRequest{ID: id, Audience: []string{"db"}, TTL: time.Hour, Issuer: tt.issuer})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jwtsvid.ParseAndValidate(token, jwtbundle.FromJWTAuthorities(td, c.Authorities().JWT), []string{"db"}); err != nil {
				t.Fatalf("go-spiffe refuses the token: %v", err)
			}
			_, claims := testutil.JWTParts(t, token)
			if got := slices.Sorted(maps.Keys(claims)); !slices.Equal(got, tt.wantClaims) {
				t.Fatalf("claims %v, want %v", got, tt.wantClaims)
			}
			if tt.issuer != "" && claims["iss"] != tt.issuer {
				t.Fatalf("iss %v, want %s", claims["iss"], tt.issuer)
			}
		})
	}
}
