package bundle_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/internal/testutil"
)

// decodeCase is a bundle file an operator could give: want authorities
// when it is taken, wantErr in the refusal otherwise.
type decodeCase struct {
	name    string
	data    []byte
	want    int
	wantErr string
}

// decodeCases are built per test: each needs fresh certificates.
func decodeCases(t *testing.T) []decodeCase {
	t.Helper()
	ca := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{peerTD.ID().URL()}})
	pem1, pem2 := ca.CertPEM(), testutil.NewCA(t, &x509.Certificate{}).CertPEM()
	victim := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{spiffeid.RequireTrustDomainFromString("victim.example").ID().URL()}})
	jwtOnly := spiffebundle.New(peerTD)
	if err := jwtOnly.AddJWTAuthority("k", testutil.NewKey(t).Public()); err != nil {
		t.Fatal(err)
	}
	jwtJSON, err := jwtOnly.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	garbledBase64 := []byte(strings.Replace(string(pem2), "\n", "\n!!", 2))
	return []decodeCase{
		{name: "PEM", data: pem1, want: 1},
		{name: "PEM after openssl's text", data: append([]byte("subject=CN=ca\nissuer=CN=ca\n"), pem1...), want: 1},
		{name: "two PEM certificates", data: append(append([]byte{}, pem1...), pem2...), want: 2},
		{name: "SPIFFE bundle JSON", data: bundleJSON(t, peerTD, 2, time.Minute), want: 2},
		{name: "empty", data: nil, wantErr: "bundle for peer.example is empty"},
		{name: "blank", data: []byte(" \n\t\n"), wantErr: "bundle for peer.example is empty"},
		{name: "text", data: []byte("not a bundle\n"), wantErr: "is neither SPIFFE bundle JSON nor PEM"},
		{name: "truncated PEM", data: append(append([]byte{}, pem1...), pem2[:len(pem2)/2]...), wantErr: "has a PEM block that does not decode"},
		{name: "garbled base64", data: append(append([]byte{}, pem1...), garbledBase64...), wantErr: "has a PEM block that does not decode"},
		{name: "data after the last block", data: append(append([]byte{}, pem1...), "-----BEG"...), wantErr: "has data after its last PEM block"},
		{name: "a key, not a certificate", data: append(append([]byte{}, pem1...), ca.KeyPEM(t)...), wantErr: "PEM block 2 is a PRIVATE KEY, not a CERTIFICATE"},
		{name: "a CERTIFICATE block that is not one", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), wantErr: "certificate 1: x509: malformed certificate"},
		{name: "JSON without keys", data: []byte(`{"keys":[]}`), wantErr: "holds no X.509 authority"},
		{name: "JSON with JWT keys only", data: jwtJSON, wantErr: "holds no X.509 authority"},
		{name: "garbled JSON", data: []byte(`{"keys":[{"use":"x509-svid",`), wantErr: "unable to parse JWKS"},
		{name: "another trust domain's CA", data: victim.CertPEM(), wantErr: "holds a CA of victim.example"},
		{name: "larger than the limit", data: append(append([]byte{}, pem1...), strings.Repeat("\n", bundle.MaxBytes)...), wantErr: "is larger than 1048576 bytes"},
	}
}

// An operator's bundle file replaces a trust domain's bundle for every
// workload: whatever would empty or shrink it unnoticed is refused, as
// ErrInvalid, saying what to give instead.
func TestDecodeRefusesWhatWouldEmptyABundle(t *testing.T) {
	for _, tt := range decodeCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bundle.Decode(peerTD, tt.data)
			if tt.wantErr == "" {
				if err != nil || len(b.X509Authorities()) != tt.want {
					t.Fatalf("Decode = %v, %v; want %d authorities", b, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode took it: %d authorities; want %q", len(b.X509Authorities()), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasSuffix(err.Error(), "or PEM CA certificates of peer.example") {
				t.Fatalf("Decode err = %v, want %q and what to give instead", err, tt.wantErr)
			}
			if !errors.Is(err, bundle.ErrInvalid) {
				t.Fatalf("Decode err = %v is not ErrInvalid", err)
			}
		})
	}
}

// Load names the file in every error, and a missing file is fs.ErrNotExist
// (the agent falls back from its stored copy on that alone, silently).
func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bundle.Load(peerTD, empty)
	if err == nil || !strings.HasPrefix(err.Error(), "bundle: "+empty+": bundle for peer.example is empty") || !errors.Is(err, bundle.ErrInvalid) {
		t.Fatalf("Load(empty) = %v; want it refused, naming %s", err, empty)
	}
	missing := filepath.Join(dir, "missing.pem")
	if _, err := bundle.Load(peerTD, missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) || errors.Is(err, bundle.ErrInvalid) {
		t.Fatalf("Load(missing) = %v; want fs.ErrNotExist naming %s", err, missing)
	}
}

// FuzzDecode feeds what an operator's bundle file could hold. An accepted
// bundle has an X.509 authority, is within the limits and holds no CA of
// another trust domain; a refusal is ErrInvalid.
func FuzzDecode(f *testing.F) {
	f.Add(bundleJSON(f, peerTD, 1, time.Minute))
	f.Add(testutil.NewCA(f, &x509.Certificate{}).CertPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Decode(peerTD, data)
		if err != nil {
			if !errors.Is(err, bundle.ErrInvalid) {
				t.Fatalf("refusal %v is not ErrInvalid", err)
			}
			return
		}
		n := len(b.X509Authorities())
		if n == 0 || n+len(b.JWTAuthorities()) > bundle.MaxAuthorities {
			t.Fatalf("accepted a bundle of %d X.509 and %d JWT authorities", n, len(b.JWTAuthorities()))
		}
		if err := bundle.CheckTrustDomain(peerTD, b.X509Authorities()); err != nil {
			t.Fatalf("accepted a bundle it must refuse: %v", err)
		}
	})
}
