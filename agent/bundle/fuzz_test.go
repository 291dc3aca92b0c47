package bundle_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
)

// FuzzParseBundle feeds what a peer's bundle endpoint (or an operator's
// bundle file) sends. An accepted bundle is within the limits, holds no CA
// of another trust domain, and survives a round trip unchanged.
func FuzzParseBundle(f *testing.F) {
	for _, seed := range []struct {
		td spiffeid.TrustDomain
		n  int
	}{{peerTD, 1}, {spiffeid.RequireTrustDomainFromString("victim.example"), 2}} {
		f.Add(bundleJSON(f, seed.td, seed.n, time.Minute))
	}
	f.Add([]byte(`{"keys":[{"use":"jwt-svid","kty":"EC","kid":"k","crv":"P-256","x":"WbbxT0s8DkxaXkV0E6yb9qTfR3JZbNU1q2k2k2k2k2k","y":"WbbxT0s8DkxaXkV0E6yb9qTfR3JZbNU1q2k2k2k2k2k"}],"spiffe_refresh_hint":-9223372036854775808}`))
	f.Add([]byte(`{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Parse(peerTD, data)
		if err != nil {
			return
		}
		if n := len(b.X509Authorities()) + len(b.JWTAuthorities()); n > bundle.MaxAuthorities {
			t.Fatalf("accepted %d authorities", n)
		}
		if err := bundle.CheckTrustDomain(peerTD, b.X509Authorities()); err != nil {
			t.Fatalf("accepted a bundle that fails the trust domain check: %v", err)
		}
		again, err := b.Marshal()
		if err != nil {
			return // e.g. a JWT key go-jose cannot marshal back
		}
		b2, err := bundle.Parse(peerTD, again)
		if err != nil || !b2.Equal(b) {
			t.Fatalf("round trip changed the bundle: %v", err)
		}
	})
}
