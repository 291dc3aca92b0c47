package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Cert is a certificate and the P-256 key it certifies.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA from tmpl (nil for a plain one): IsCA and
// BasicConstraintsValid are set, and zero KeyUsage becomes keyCertSign;
// see Issue for the other defaults.
func NewCA(tb testing.TB, tmpl *x509.Certificate) *Cert {
	tb.Helper()
	if tmpl == nil {
		tmpl = &x509.Certificate{}
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	return sign(tb, tmpl, nil)
}

// Issue signs tmpl with c for a new P-256 key. A zero SerialNumber becomes a
// random one; zero NotBefore and NotAfter become an hour ago and a day from
// now. tmpl is filled in place.
func (c *Cert) Issue(tb testing.TB, tmpl *x509.Certificate) *Cert {
	tb.Helper()
	return sign(tb, tmpl, c)
}

// SelfSigned is Issue for a certificate that signs itself (a leaf a test
// presents without a chain).
func SelfSigned(tb testing.TB, tmpl *x509.Certificate) *Cert {
	tb.Helper()
	return sign(tb, tmpl, nil)
}

func sign(tb testing.TB, tmpl *x509.Certificate, parent *Cert) *Cert {
	tb.Helper()
	key := NewKey(tb)
	if tmpl.SerialNumber == nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.SerialNumber = serial
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	return &Cert{Cert: CreateCertificate(tb, tmpl, issuer, &key.PublicKey, signer), Key: key}
}

// NewKey makes a P-256 key.
func NewKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// CreateCertificate is x509.CreateCertificate and x509.ParseCertificate,
// failing the test on an error; for a test that picks every field and key.
func CreateCertificate(tb testing.TB, tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// CertPEM is c's certificate as a PEM CERTIFICATE block.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is c's key as a PEM PKCS#8 PRIVATE KEY block.
func (c *Cert) KeyPEM(tb testing.TB) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
