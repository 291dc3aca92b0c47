package ca_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/testutil"
)

var (
	leafIssuerNotBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leafIssuerNotAfter  = leafIssuerNotBefore.Add(time.Hour)
)

// signLeafCases are moments in an issuer's life, valid from
// leafIssuerNotBefore for an hour, and what SignLeaf must do then.
var signLeafCases = []struct {
	name    string
	now     time.Time
	refused string // in the ErrUnavailable error; empty: signs
}{
	{name: "before the issuer is valid", now: leafIssuerNotBefore.Add(-time.Second), refused: "not valid until"},
	{name: "in the issuer's first seconds", now: leafIssuerNotBefore.Add(time.Second)},
	{name: "mid life", now: leafIssuerNotBefore.Add(30 * time.Minute)},
	{name: "with exactly MinIssuerLife left", now: leafIssuerNotAfter.Add(-ca.MinIssuerLife)},
	{name: "with less than MinIssuerLife left", now: leafIssuerNotAfter.Add(-ca.MinIssuerLife + time.Second), refused: "less than"},
	{name: "at the issuer's NotAfter", now: leafIssuerNotAfter, refused: "expired at"},
	{name: "after the issuer expired", now: leafIssuerNotAfter.Add(time.Hour), refused: "expired at"},
}

// A leaf lies within its issuer's validity, and an issuer outside its
// validity (or about to leave it) refuses with ErrUnavailable rather than
// sign a leaf that does not chain or is due for renewal at once.
func TestSignLeafStaysWithinIssuerLife(t *testing.T) {
	issuer := testutil.NewCA(t, &x509.Certificate{NotBefore: leafIssuerNotBefore, NotAfter: leafIssuerNotAfter})
	id := spiffeid.RequireFromString("spiffe://example.org/w")
	for _, tt := range signLeafCases {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := ca.SignLeaf(issuer.Cert, issuer.Key, ca.X509SVIDRequest{ID: id, Key: testutil.NewKey(t), TTL: 10 * time.Minute}, tt.now)
			if tt.refused != "" {
				if !errors.Is(err, ca.ErrUnavailable) || !errors.Is(err, ca.ErrExpired) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err = %v, want ca.ErrExpired and ca.ErrUnavailable saying %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignLeaf: %v", err)
			}
			if leaf.NotBefore.Before(issuer.Cert.NotBefore) || leaf.NotAfter.After(issuer.Cert.NotAfter) {
				t.Fatalf("leaf valid %v..%v, outside its issuer's %v..%v", leaf.NotBefore, leaf.NotAfter, issuer.Cert.NotBefore, issuer.Cert.NotAfter)
			}
			if err := ca.CheckX509SVID([]*x509.Certificate{leaf}, id, []*x509.Certificate{issuer.Cert}, tt.now); err != nil {
				t.Fatalf("leaf does not verify at issuance: %v", err)
			}
		})
	}
}

// IssuerCover is the rule both SignLeaf (need = MinIssuerLife) and the
// Vault backend (need = the SVID TTL) sign by; its bounds are exact.
func TestIssuerCover(t *testing.T) {
	const need = 10 * time.Minute
	for _, tc := range []struct {
		name string
		now  time.Time
		want ca.Cover
	}{
		{name: "a second before NotBefore", now: leafIssuerNotBefore.Add(-time.Second), want: ca.CoverNotYetValid},
		{name: "at NotBefore", now: leafIssuerNotBefore, want: ca.CoverOK},
		{name: "with exactly need left", now: leafIssuerNotAfter.Add(-need), want: ca.CoverOK},
		{name: "with a second less than need left", now: leafIssuerNotAfter.Add(-need + time.Second), want: ca.CoverTooShort},
		{name: "at NotAfter", now: leafIssuerNotAfter, want: ca.CoverExpired},
		{name: "after NotAfter", now: leafIssuerNotAfter.Add(time.Hour), want: ca.CoverExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ca.IssuerCover(leafIssuerNotBefore, leafIssuerNotAfter, tc.now, need); got != tc.want {
				t.Fatalf("IssuerCover at %v = %d, want %d", tc.now, got, tc.want)
			}
		})
	}
}
