package cache

import (
	"bytes"
	"context"
	"crypto/x509"
	"reflect"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
)

// fuzzSVIDFile returns the contents of a real persisted SVID file.
func fuzzSVIDFile(f *testing.F, e registry.Entry) []byte {
	f.Helper()
	authority, err := local.New(local.Config{TrustDomain: e.ID.TrustDomain()})
	if err != nil {
		f.Fatal(err)
	}
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		f.Fatal(err)
	}
	chain, err := authority.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: e.ID, Key: key, TTL: e.TTL, DNSNames: e.DNSNames})
	if err != nil {
		f.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	return encodeSVID(newSVID(e, chain, keyDER))
}

// FuzzParseSVID feeds persisted SVID files (<data_dir>/svids/*.pem, which
// the agent reads back at start) to the parser. What it accepts must hold
// together: an entry with a SPIFFE ID and a positive TTL, a chain whose
// leaf is the key's, DER that is the parsed chain and key, and a file that
// encodes back to the same SVID.
func FuzzParseSVID(f *testing.F) {
	id := spiffeid.RequireFromString("spiffe://example.org/ns/prod/sa/api")
	good := fuzzSVIDFile(f, registry.Entry{ID: id, TTL: time.Hour, DNSNames: []string{"api.local", "api"}, Hint: "internal"})
	f.Add(good)
	f.Add(fuzzSVIDFile(f, registry.Entry{ID: id, TTL: 90 * time.Second}))
	f.Add(bytes.Replace(good, []byte("TTL: 1h0m0s"), []byte("TTL: -1h"), 1))
	f.Add(bytes.Replace(good, []byte("SPIFFE-ID: spiffe://example.org/ns/prod/sa/api"), []byte("SPIFFE-ID: spiffe://example.org"), 1))
	f.Add([]byte("-----BEGIN SWORN SVID ENTRY-----\nSPIFFE-ID: spiffe://example.org/x\nTTL: 1s\n\n-----END SWORN SVID ENTRY-----\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		s, chain, err := parseSVID(data)
		if err != nil {
			return
		}
		if s.Entry.ID.IsZero() || s.Entry.TTL <= 0 {
			t.Fatalf("accepted entry %+v without an ID or a positive TTL", s.Entry)
		}
		key, err := s.PrivateKey()
		if err != nil || len(chain) == 0 || !ca.SamePublicKey(chain[0].PublicKey, key.Public()) {
			t.Fatalf("accepted an SVID whose key is not its leaf's: %v", err)
		}
		var der []byte
		for _, c := range chain {
			der = append(der, c.Raw...)
		}
		if !bytes.Equal(der, s.ChainDER) {
			t.Fatal("ChainDER is not the parsed chain")
		}
		if s.Serial != chain[0].SerialNumber.Text(16) || !s.NotBefore.Equal(chain[0].NotBefore) || !s.NotAfter.Equal(chain[0].NotAfter) {
			t.Fatal("the serial or validity kept is not the leaf's")
		}
		again, _, err := parseSVID(encodeSVID(s))
		if err != nil {
			t.Fatalf("an accepted SVID does not parse after encoding: %v", err)
		}
		if !reflect.DeepEqual(again.Entry, s.Entry) || !bytes.Equal(again.ChainDER, s.ChainDER) || !bytes.Equal(again.KeyDER, s.KeyDER) {
			t.Fatalf("encode and parse changed the SVID: %+v, want %+v", again.Entry, s.Entry)
		}
	})
}
