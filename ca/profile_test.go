package ca_test

import (
	"crypto/x509"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestCheckX509SVID(t *testing.T) {
	now := time.Now()
	rootCA := testutil.NewCA(t, &x509.Certificate{NotAfter: now.Add(time.Hour)})
	root, rootKey := rootCA.Cert, rootCA.Key
	otherRoot := testutil.NewCA(t, &x509.Certificate{NotAfter: now.Add(time.Hour)}).Cert
	id := spiffeid.RequireFromString("spiffe://example.org/workload")

	good := func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Minute),
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{id.URL()},
		}
	}
	leafKey := testutil.NewKey(t)
	tests := []struct {
		name    string
		mutate  func(*x509.Certificate)
		roots   []*x509.Certificate
		wantErr string
	}{
		{name: "good", mutate: func(*x509.Certificate) {}},
		{name: "two URIs", mutate: func(c *x509.Certificate) { c.URIs = append(c.URIs, id.URL()) }, wantErr: "2 URI SANs"},
		{name: "no URI", mutate: func(c *x509.Certificate) { c.URIs = nil }, wantErr: "0 URI SANs"},
		{name: "other ID", mutate: func(c *x509.Certificate) {
			c.URIs = []*url.URL{spiffeid.RequireFromString("spiffe://example.org/other").URL()}
		}, wantErr: `want "spiffe://example.org/workload"`},
		{name: "no basic constraints", mutate: func(c *x509.Certificate) { c.BasicConstraintsValid = false }, wantErr: "no basicConstraints"},
		{name: "CA leaf", mutate: func(c *x509.Certificate) {
			c.IsCA = true
			c.KeyUsage |= x509.KeyUsageCertSign
		}, wantErr: "cA=true"},
		{name: "no key usage", mutate: func(c *x509.Certificate) { c.KeyUsage = 0 }, wantErr: "keyUsage is missing"},
		{name: "cert sign", mutate: func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }, wantErr: "keyCertSign"},
		{name: "server auth only", mutate: func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, wantErr: "clientAuth"},
		{name: "foreign root", mutate: func(*x509.Certificate) {}, roots: []*x509.Certificate{otherRoot}, wantErr: "does not chain"},
		{name: "expired", mutate: func(c *x509.Certificate) { c.NotAfter = now.Add(-time.Second) }, wantErr: "does not chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := good()
			tt.mutate(tmpl)
			leaf := testutil.CreateCertificate(t, tmpl, root, &leafKey.PublicKey, rootKey)
			roots := tt.roots
			if roots == nil {
				roots = []*x509.Certificate{root}
			}
			err := ca.CheckX509SVID([]*x509.Certificate{leaf}, id, roots, now)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			case err != nil && !errors.Is(err, ca.ErrBadCertificate):
				t.Fatalf("err = %v does not wrap ErrBadCertificate", err)
			}
		})
	}
}
