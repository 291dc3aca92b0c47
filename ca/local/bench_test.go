package local_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
)

// BenchmarkIssueX509SVID is one SVID issuance as the agent does it: a new
// P-256 key, then a leaf signed by the embedded CA (x509.CreateCertificate,
// which also verifies its own signature, and a parse of the result).
func BenchmarkIssueX509SVID(b *testing.B) {
	c, err := local.New(local.Config{TrustDomain: td})
	if err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		key, err := ca.KeyECP256.Generate()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.SignX509SVID(ctx, ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawECDSAKeygenAndSign is the floor issuance is compared with:
// one P-256 key generation and one signature over a digest.
func BenchmarkRawECDSAKeygenAndSign(b *testing.B) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256(make([]byte, 512))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			b.Fatal(err)
		}
		if _, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawECDSAKeygenSignVerify adds the signature check that
// x509.CreateCertificate always performs, to show where the gap goes.
func BenchmarkRawECDSAKeygenSignVerify(b *testing.B) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256(make([]byte, 512))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			b.Fatal(err)
		}
		sig, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:])
		if err != nil {
			b.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&caKey.PublicKey, digest[:], sig) {
			b.Fatal("bad signature")
		}
	}
}
