package oidc_test

import (
	"crypto"
	"crypto/elliptic"
	"net/http"
	"testing"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/oidc"
)

func TestConditionalGetsAnswer304WhileTheDocumentIsTheSame(t *testing.T) {
	store := bundle.NewStore()
	store.SetJWTAuthorities(td, map[string]crypto.PublicKey{"k1": ecKey(t, elliptic.P256())})
	h := newHandler(t, issuer, store)
	for _, path := range []string{oidc.DiscoveryPath, oidc.KeysPath} {
		t.Run(path, func(t *testing.T) {
			first := get(t, h, http.MethodGet, path, nil)
			tag := first.Header().Get("ETag")
			if first.Code != http.StatusOK || len(tag) < 3 || tag[0] != '"' {
				t.Fatalf("first GET: %d, ETag %q", first.Code, tag)
			}
			if cc := first.Header().Get("Cache-Control"); cc != "public, max-age=300" {
				t.Fatalf("Cache-Control %q", cc)
			}
			tests := []struct {
				name, ifNoneMatch string
				want              int
			}{
				{name: "same tag", ifNoneMatch: tag, want: http.StatusNotModified},
				{name: "weak form, in a list", ifNoneMatch: `"x", W/` + tag, want: http.StatusNotModified},
				{name: "star", ifNoneMatch: "*", want: http.StatusNotModified},
				{name: "other tag", ifNoneMatch: `"x"`, want: http.StatusOK},
			}
			for _, tt := range tests {
				rec := get(t, h, http.MethodGet, path, map[string]string{"If-None-Match": tt.ifNoneMatch})
				if rec.Code != tt.want || rec.Header().Get("ETag") != tag {
					t.Fatalf("%s: %d with ETag %q, want %d with %q", tt.name, rec.Code, rec.Header().Get("ETag"), tt.want, tag)
				}
				if tt.want == http.StatusNotModified && rec.Body.Len() != 0 {
					t.Fatalf("%s: 304 with a body", tt.name)
				}
			}
			store.SetJWTAuthorities(td, map[string]crypto.PublicKey{"k9": ecKey(t, elliptic.P384())})
			if rec := get(t, h, http.MethodGet, path, map[string]string{"If-None-Match": tag}); rec.Code != http.StatusOK {
				t.Fatalf("after rotation, the old tag got %d, want 200", rec.Code)
			}
		})
	}
}

// emptyStore holds the trust domain's JWT bundle with no keys in it.
func emptyStore() *bundle.Store {
	store := bundle.NewStore()
	store.SetJWTAuthorities(td, map[string]crypto.PublicKey{})
	return store
}

func TestHeadSendsHeadersOnly(t *testing.T) {
	h := newHandler(t, issuer, emptyStore())
	get1 := get(t, h, http.MethodGet, oidc.KeysPath, nil)
	head := get(t, h, http.MethodHead, oidc.KeysPath, nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != get1.Header().Get("ETag") ||
		head.Header().Get("Content-Length") != get1.Header().Get("Content-Length") {
		t.Fatalf("HEAD: %d, %d bytes, headers %v; GET headers %v", head.Code, head.Body.Len(), head.Header(), get1.Header())
	}
	if got := get1.Body.String(); got != `{"keys":[]}` {
		t.Fatalf("empty bundle served as %s", got)
	}
}

func TestOtherPathsAndMethodsAreRefused(t *testing.T) {
	h := newHandler(t, issuer+"/prefix", emptyStore())
	tests := []struct {
		name, method, path string
		want               int
	}{
		{name: "root", method: http.MethodGet, path: "/", want: http.StatusNotFound},
		{name: "keys without the issuer's path", method: http.MethodGet, path: "/keys", want: http.StatusNotFound},
		{name: "discovery with a trailing slash", method: http.MethodGet, path: "/prefix" + oidc.DiscoveryPath + "/", want: http.StatusNotFound},
		{name: "POST keys", method: http.MethodPost, path: "/prefix/keys", want: http.StatusMethodNotAllowed},
		{name: "DELETE discovery", method: http.MethodDelete, path: "/prefix" + oidc.DiscoveryPath, want: http.StatusMethodNotAllowed},
		{name: "GET keys", method: http.MethodGet, path: "/prefix/keys", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.path, nil)
			if rec.Code != tt.want {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.want)
			}
			if tt.want == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("405 with Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
}

func TestNewRefusesAnIssuerVerifiersCannotUse(t *testing.T) {
	for _, iss := range []string{"", "http://oidc.example.org", "https://", "https://oidc.example.org?x=1", "https://oidc.example.org#f", "https://u@oidc.example.org"} {
		if _, err := oidc.New(oidc.Config{Issuer: iss, TrustDomain: td, Bundles: bundle.NewStore()}); err == nil {
			t.Errorf("issuer %q accepted", iss)
		}
	}
}

func TestNoBundleYetIsAnUncachedRetryLater(t *testing.T) {
	store := bundle.NewStore()
	store.SetJWTAuthorities(other, map[string]crypto.PublicKey{"o": ecKey(t, elliptic.P256())})
	h := newHandler(t, issuer, store)
	for _, path := range []string{oidc.DiscoveryPath, oidc.KeysPath} {
		rec := get(t, h, http.MethodGet, path, nil)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Cache-Control") != "no-store" ||
			rec.Header().Get("Retry-After") == "" || rec.Header().Get("ETag") != "" {
			t.Fatalf("GET %s before the trust domain's bundle: %d %v, want 503 no-store with Retry-After and no ETag",
				path, rec.Code, rec.Header())
		}
	}
	store.SetJWTAuthorities(td, map[string]crypto.PublicKey{"k": ecKey(t, elliptic.P256())})
	if keys, _ := fetchKeys(t, h); len(keys) != 1 || keys["k"] == nil {
		t.Fatalf("after the bundle arrived: %v", keys)
	}
}
