package main

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/internal/testutil"
)

// The watcher's checks are what TestSoak's verdict on SVIDs rests on: each
// must report the SVID a plausible agent bug would hand over.
func TestCheckReportsEveryBadSVID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("soak.test")
	want := spiffeid.RequireFromPath(td, "/uid/20000")
	ca, other := testutil.NewCA(t, nil), testutil.NewCA(t, nil)
	now := time.Now()
	tests := []struct {
		name      string
		signer    *testutil.Cert
		id        spiffeid.ID
		notBefore time.Time
		notAfter  time.Time
		want      []string // substrings, one per message, in order
	}{
		{name: "good", signer: ca, id: want, notBefore: now.Add(-time.Minute), notAfter: now.Add(time.Minute)},
		{name: "expired", signer: ca, id: want, notBefore: now.Add(-2 * time.Minute), notAfter: now.Add(-time.Second),
			want: []string{"is not valid now", "does not chain to the bundle sent with it"}},
		{name: "not yet valid", signer: ca, id: want, notBefore: now.Add(time.Minute), notAfter: now.Add(2 * time.Minute),
			want: []string{"is not valid now", "does not chain to the bundle sent with it"}},
		{name: "wrong ID", signer: ca, id: spiffeid.RequireFromPath(td, "/uid/20001"), notBefore: now.Add(-time.Minute), notAfter: now.Add(time.Minute),
			want: []string{"has ID spiffe://soak.test/uid/20001, want spiffe://soak.test/uid/20000"}},
		{name: "signed by a CA not in the bundle", signer: other, id: want, notBefore: now.Add(-time.Minute), notAfter: now.Add(time.Minute),
			want: []string{"does not chain to the bundle sent with it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(tt.id.String())
			leaf := tt.signer.Issue(t, &x509.Certificate{URIs: []*url.URL{u}, NotBefore: tt.notBefore, NotAfter: tt.notAfter,
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
			svid := &x509svid.SVID{ID: tt.id, Certificates: []*x509.Certificate{leaf.Cert}, PrivateKey: leaf.Key}
			c := &workloadapi.X509Context{SVIDs: []*x509svid.SVID{svid},
				Bundles: x509bundle.NewSet(x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Cert}))}
			got := check(svid, c, want, now)
			if len(got) != len(tt.want) {
				t.Fatalf("check = %q, want %d messages containing %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("message %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
