package local

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
)

var fuzzTD = spiffeid.RequireTrustDomainFromString("example.org")

// fuzzCAFile returns the contents of a real CA file as store.save writes it.
func fuzzCAFile(f *testing.F, kt ca.KeyType) ([]byte, *generation) {
	f.Helper()
	a, err := newGeneration(fuzzTD, kt, time.Now(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	data, err := encodeGeneration(a)
	if err != nil {
		f.Fatal(err)
	}
	return data, a
}

// caFileName names a fuzzed file as the store would, after the SubjectKeyId
// of its first certificate, so inputs get past the file name check.
func caFileName(data []byte) string {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return "ca-0.pem"
		}
		if b.Type == "CERTIFICATE" {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				return "ca-" + hex.EncodeToString(c.SubjectKeyId) + ".pem"
			}
		}
	}
}

// FuzzReadCAFile feeds CA files to the loader. Whatever it accepts must
// be a working CA: its key is its certificate's, it signs an SVID that
// verifies against it, its JWT key signs ES256, and it survives a save and
// reload unchanged.
func FuzzReadCAFile(f *testing.F) {
	// An RSA CA is in testdata/fuzz: generating RSA keys in a binary
	// instrumented for fuzzing takes minutes.
	data, a := fuzzCAFile(f, ca.KeyECP256)
	f.Add(data)
	other, _ := fuzzCAFile(f, ca.KeyECP256)
	// The CA key of another CA, and a file with no JWT key (as written
	// before CAs carried one).
	certPEM, _ := pem.Decode(data)
	_, rest := pem.Decode(other)
	f.Add(append(pem.EncodeToMemory(certPEM), rest...))
	keyDER, _ := x509.MarshalPKCS8PrivateKey(a.key)
	f.Add(append(pem.EncodeToMemory(certPEM), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))

	leafKey, err := ca.KeyECP256.Generate()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Parsed in memory, not through a file: a fuzzer that writes and
		// fsyncs files runs a hundred times slower and finds no more.
		path := filepath.Join("/data/ca", caFileName(data))
		a, err := parseGeneration(path, data)
		if err != nil {
			return
		}
		if a.id == "" || a.id != hex.EncodeToString(a.cert.SubjectKeyId) || !a.cert.IsCA {
			t.Fatalf("accepted CA with id %q, SKI %x, IsCA %v", a.id, a.cert.SubjectKeyId, a.cert.IsCA)
		}
		if !ca.SamePublicKey(a.cert.PublicKey, a.key.Public()) {
			t.Fatal("accepted a CA whose key is not its certificate's")
		}
		now := a.cert.NotBefore.Add(time.Second)
		if !now.Before(a.cert.NotAfter) {
			now = a.cert.NotBefore
		}
		id := spiffeid.RequireFromPath(fuzzTD, "/fuzz")
		if leaf, err := ca.SignLeaf(a.cert, a.key, ca.X509SVIDRequest{ID: id, Key: leafKey, TTL: time.Minute}, now); err == nil {
			if err := leaf.CheckSignatureFrom(a.cert); err != nil {
				t.Fatalf("an accepted CA signs leaves that do not verify against it: %v", err)
			}
		}
		if a.jwtKey == nil {
			if err := a.newJWTKey(); err != nil {
				t.Fatal(err)
			}
		} else if _, _, err := ca.SignJWT(a.jwtKey, a.jwtKid, ca.JWTSVIDRequest{ID: id, Audience: []string{"x"}, TTL: time.Minute}, now, now.Add(time.Hour)); err != nil {
			t.Fatalf("an accepted JWT key cannot sign: %v", err)
		}
		saved, err := encodeGeneration(a)
		if err != nil {
			t.Fatalf("encode an accepted CA: %v", err)
		}
		b, err := parseGeneration(path, saved)
		if err != nil {
			t.Fatalf("an accepted CA does not load after a save: %v", err)
		}
		if b.id != a.id || !bytes.Equal(b.cert.Raw, a.cert.Raw) || b.jwtKid != a.jwtKid {
			t.Fatal("save and reload changed the CA")
		}
	})
}

// FuzzStateFile feeds state.json contents next to one real CA. New must
// either refuse or come up with a signing CA that is in its bundle.
func FuzzStateFile(f *testing.F) {
	data, a := fuzzCAFile(f, ca.KeyECP256)
	f.Add([]byte(`{"active":"` + a.id + `"}`))
	f.Add([]byte(`{"active":"` + a.id + `","prepared":"` + a.id + `"}`))
	f.Add([]byte(`{"active":"","prepared":"` + a.id + `"}`))
	f.Add([]byte(`{"active":"00ff"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[`))
	name := "ca-" + a.id + ".pem"

	f.Fuzz(func(t *testing.T, state []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, stateName), state, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{TrustDomain: fuzzTD, Dir: dir})
		if err != nil {
			return
		}
		auths := c.Authorities()
		found := false
		for _, cert := range auths.X509 {
			found = found || hex.EncodeToString(cert.SubjectKeyId) == auths.Signing
		}
		if !found {
			t.Fatalf("signing CA %q is not in the bundle", auths.Signing)
		}
		if auths.Signing != a.id {
			t.Fatalf("signing CA %q, want the live persisted %q", auths.Signing, a.id)
		}
		key, _ := ca.KeyECP256.Generate()
		chain, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(fuzzTD, "/w"), Key: key, TTL: time.Minute})
		if err != nil {
			t.Fatalf("sign after load: %v", err)
		}
		if err := ca.CheckX509SVID(chain, spiffeid.RequireFromPath(fuzzTD, "/w"), auths.X509, time.Now()); err != nil {
			t.Fatalf("SVID does not verify against the bundle: %v", err)
		}
	})
}
