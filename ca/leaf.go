package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Backdate is how far NotBefore is set in the past, for peers whose clocks
// lag a little.
const Backdate = 10 * time.Second

// SignLeaf signs an X.509-SVID for req with a CA held in memory (the
// embedded CA, or an intermediate Vault signed). The leaf follows the
// profile CheckX509SVID enforces and never outlives parent.
func SignLeaf(parent *x509.Certificate, parentKey crypto.Signer, req X509SVIDRequest, now time.Time) (*x509.Certificate, error) {
	if req.TTL <= 0 || req.Key == nil {
		return nil, fmt.Errorf("%w: a key and a positive ttl are required", ErrInvalidRequest)
	}
	notAfter := now.Add(req.TTL)
	if notAfter.After(parent.NotAfter) {
		notAfter = parent.NotAfter
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, isRSA := req.Key.Public().(*rsa.PublicKey); isRSA {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"sworn"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{req.ID.URL()},
		DNSNames:              req.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, req.Key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", req.ID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse signed leaf: %w", err)
	}
	return leaf, nil
}

// NewSerial returns a random positive 128-bit serial number.
func NewSerial() (*big.Int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b[:]), nil
}
