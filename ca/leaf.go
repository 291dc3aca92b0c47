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

// MinIssuerLife is the least time an issuer must have left to sign. A
// leaf is renewed at about half its lifetime, and that lifetime includes
// the Backdate: a leaf cut short by an issuer with seconds left would be
// due for renewal the moment it is issued, and every identity would call
// the CA in a loop until the issuer expired. Refusing (ErrUnavailable)
// sends the caller into its retry backoff instead.
const MinIssuerLife = time.Minute

// SignLeaf signs an X.509-SVID for req with a CA held in memory (the
// embedded CA, or an intermediate Vault signed). The leaf follows the
// profile CheckX509SVID enforces and lies within parent's validity: it
// never outlives parent nor predates it. An issuer that is not valid yet,
// has expired or has less than MinIssuerLife left refuses with
// ErrUnavailable: the leaf would not chain, or would be due at once.
func SignLeaf(parent *x509.Certificate, parentKey crypto.Signer, req X509SVIDRequest, now time.Time) (*x509.Certificate, error) {
	if req.TTL <= 0 || req.Key == nil {
		return nil, fmt.Errorf("%w: a key and a positive ttl are required", ErrInvalidRequest)
	}
	if err := CheckIssuerLife(parent, now); err != nil {
		return nil, err
	}
	notAfter := now.Add(req.TTL)
	if notAfter.After(parent.NotAfter) {
		notAfter = parent.NotAfter
	}
	notBefore := now.Add(-Backdate)
	if notBefore.Before(parent.NotBefore) {
		notBefore = parent.NotBefore
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
		NotBefore:             notBefore,
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

// Cover is where an issuer's validity stands at a moment against how long
// a signature needs it to last.
type Cover int

// Covers, in the order IssuerCover checks them.
const (
	CoverOK          Cover = iota // valid now and for at least need
	CoverNotYetValid              // now is before its NotBefore
	CoverExpired                  // now is at or past its NotAfter
	CoverTooShort                 // valid now, but it ends less than need from now
)

// IssuerCover is the one rule every backend signs by: an issuer valid from
// notBefore until notAfter may sign at now only if it is valid then and
// stays valid for need (MinIssuerLife for SignLeaf, which shortens the
// leaf; the full SVID TTL for Vault's issuer, which would not).
func IssuerCover(notBefore, notAfter, now time.Time, need time.Duration) Cover {
	switch {
	case now.Before(notBefore):
		return CoverNotYetValid
	case !now.Before(notAfter):
		return CoverExpired
	case notAfter.Sub(now) < need:
		return CoverTooShort
	}
	return CoverOK
}

// CheckIssuerLife returns an error wrapping ErrExpired (so the agent fails
// readiness saying the CA must be rotated, not that it is unreachable) and
// ErrUnavailable (a later call may succeed, once a successor signs),
// naming the issuer and the time, unless issuer may sign at now: valid,
// with at least MinIssuerLife left (IssuerCover).
func CheckIssuerLife(issuer *x509.Certificate, now time.Time) error {
	name := issuer.Subject.CommonName
	switch IssuerCover(issuer.NotBefore, issuer.NotAfter, now, MinIssuerLife) {
	case CoverNotYetValid:
		return fmt.Errorf("%w (%w): issuer %q is not valid until %s (now %s); check the clock", ErrExpired, ErrUnavailable, name, issuer.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case CoverExpired:
		return fmt.Errorf("%w (%w): issuer %q expired at %s", ErrExpired, ErrUnavailable, name, issuer.NotAfter.UTC().Format(time.RFC3339))
	case CoverTooShort:
		return fmt.Errorf("%w (%w): issuer %q expires at %s, less than %v from now; no SVID is signed until its successor signs", ErrExpired, ErrUnavailable, name, issuer.NotAfter.UTC().Format(time.RFC3339), MinIssuerLife)
	}
	return nil
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
