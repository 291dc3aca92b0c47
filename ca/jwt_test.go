package ca_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestSignJWTCarriesIssOnlyWhenAsked(t *testing.T) {
	key := testutil.NewKey(t)
	now := time.Now().Truncate(time.Second)
	id := spiffeid.RequireFromString("spiffe://example.org/web")
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
			req := ca.JWTSVIDRequest{ID: id, Audience: []string{"db"}, TTL: time.Minute, Issuer: tt.issuer}
			token, _, err := ca.SignJWT(key, "kid1", req, now, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			header, claims := testutil.JWTParts(t, token)
			if got := slices.Sorted(maps.Keys(header)); !slices.Equal(got, []string{"alg", "kid", "typ"}) {
				t.Fatalf("header fields %v", got)
			}
			if got := slices.Sorted(maps.Keys(claims)); !slices.Equal(got, tt.wantClaims) {
				t.Fatalf("claims %v, want %v", got, tt.wantClaims)
			}
			if tt.issuer != "" && claims["iss"] != tt.issuer {
				t.Fatalf("iss %v, want %s", claims["iss"], tt.issuer)
			}
		})
	}
}
