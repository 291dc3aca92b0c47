package oidc_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/oidc"
	"github.com/sworn-id/sworn/internal/testutil"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	other = spiffeid.RequireTrustDomainFromString("other.org")
)

const issuer = "https://oidc.example.org"

func newHandler(t *testing.T, iss string, store *bundle.Store) *oidc.Handler {
	t.Helper()
	h, err := oidc.New(oidc.Config{Issuer: iss, TrustDomain: td, Bundles: store})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "https://oidc.example.org"+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func rsaKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

type discoveryDoc struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	Algs          []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	ResponseTypes []string `json:"response_types_supported"`
}

func TestDiscoveryDocumentStatesTheIssuerAndTheAlgorithmsOfTheKeys(t *testing.T) {
	tests := []struct {
		name     string
		issuer   string
		path     string // where the document is served
		keys     map[string]crypto.PublicKey
		wantJWKS string
		wantAlgs []string
	}{
		{name: "P-256 key", issuer: issuer, path: oidc.DiscoveryPath,
			keys: map[string]crypto.PublicKey{"a": ecKey(t, elliptic.P256())}, wantJWKS: issuer + "/keys", wantAlgs: []string{"ES256"}},
		{name: "mixed keys", issuer: issuer + "/", path: oidc.DiscoveryPath,
			keys:     map[string]crypto.PublicKey{"a": ecKey(t, elliptic.P384()), "b": rsaKey(t), "c": ecKey(t, elliptic.P256()), "d": ecKey(t, elliptic.P256())},
			wantJWKS: issuer + "/keys", wantAlgs: []string{"ES256", "ES384", "RS256"}},
		{name: "no keys", issuer: issuer, path: oidc.DiscoveryPath, keys: map[string]crypto.PublicKey{}, wantJWKS: issuer + "/keys", wantAlgs: []string{"ES256"}},
		{name: "issuer with a path", issuer: issuer + "/td/example", path: "/td/example" + oidc.DiscoveryPath,
			keys: map[string]crypto.PublicKey{"a": ecKey(t, elliptic.P256())}, wantJWKS: issuer + "/td/example/keys", wantAlgs: []string{"ES256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := bundle.NewStore()
			if tt.keys != nil {
				store.SetJWTAuthorities(td, tt.keys)
			}
			rec := get(t, newHandler(t, tt.issuer, store), http.MethodGet, tt.path, nil)
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q, want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
			}
			var doc discoveryDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			want := discoveryDoc{Issuer: tt.issuer, JWKSURI: tt.wantJWKS, Algs: tt.wantAlgs,
				SubjectTypes: []string{"public"}, ResponseTypes: []string{"id_token"}}
			if !equalDoc(doc, want) {
				t.Fatalf("document %+v, want %+v", doc, want)
			}
		})
	}
}

func equalDoc(a, b discoveryDoc) bool {
	return a.Issuer == b.Issuer && a.JWKSURI == b.JWKSURI && slices.Equal(a.Algs, b.Algs) &&
		slices.Equal(a.SubjectTypes, b.SubjectTypes) && slices.Equal(a.ResponseTypes, b.ResponseTypes)
}

// fetchKeys returns the JWKS served and checks every key is public, for
// signatures, with the algorithm of its type.
func fetchKeys(t *testing.T, h http.Handler) (map[string]crypto.PublicKey, string) {
	t.Helper()
	rec := get(t, h, http.MethodGet, oidc.KeysPath, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /keys: %d", rec.Code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	got := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm != oidc.Algorithm(k.Key) || k.Algorithm == "" {
			t.Fatalf("key %s: public %v, use %q, alg %q", k.KeyID, k.IsPublic(), k.Use, k.Algorithm)
		}
		got[k.KeyID] = k.Key
	}
	return got, rec.Header().Get("ETag")
}

func sameKeys(t *testing.T, got, want map[string]crypto.PublicKey) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("served %d keys, want %d", len(got), len(want))
	}
	for kid, pub := range want {
		if g, ok := got[kid]; !ok || !g.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("key %s served as %v, want the bundle's", kid, g)
		}
	}
}

func TestKeysAreTheTrustDomainsJWTBundleAndFollowRotation(t *testing.T) {
	store := bundle.NewStore()
	first := map[string]crypto.PublicKey{"k1": ecKey(t, elliptic.P256()), "k2": rsaKey(t)}
	store.SetJWTAuthorities(td, first)
	store.SetJWTAuthorities(other, map[string]crypto.PublicKey{"foreign": ecKey(t, elliptic.P256())})
	h := newHandler(t, issuer, store)

	got, tag1 := fetchKeys(t, h)
	sameKeys(t, got, first) // and not the federated domain's key

	rotated := map[string]crypto.PublicKey{"k2": first["k2"], "k3": ecKey(t, elliptic.P256())}
	store.SetJWTAuthorities(td, rotated)
	got, tag2 := fetchKeys(t, h)
	sameKeys(t, got, rotated)
	if tag1 == tag2 {
		t.Fatalf("ETag %s unchanged after rotation", tag1)
	}

	// A change elsewhere in the store re-renders the same keys: same ETag.
	store.SetX509Authorities(td, []*x509.Certificate{testutil.NewCA(t, nil).Cert})
	if _, tag3 := fetchKeys(t, h); tag3 != tag2 {
		t.Fatalf("ETag %s changed to %s with the same keys", tag2, tag3)
	}
}
