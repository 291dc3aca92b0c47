package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
)

// KeyType names a key algorithm and size.
type KeyType string

// Supported key types.
const (
	KeyECP256  KeyType = "ec-p256"
	KeyECP384  KeyType = "ec-p384"
	KeyRSA2048 KeyType = "rsa-2048"
)

// KeyTypes lists the supported key types, default first.
var KeyTypes = []KeyType{KeyECP256, KeyECP384, KeyRSA2048}

// Validate reports whether k is supported. The empty KeyType is.
func (k KeyType) Validate() error {
	switch k {
	case "", KeyECP256, KeyECP384, KeyRSA2048:
		return nil
	}
	return fmt.Errorf("unsupported key type %q (want one of %v)", string(k), KeyTypes)
}

// Generate makes a new key pair; the empty KeyType means ec-p256.
func (k KeyType) Generate() (crypto.Signer, error) {
	switch k {
	case "", KeyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, k.Validate())
}

// SamePublicKey reports whether a and b are the same public key.
func SamePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// ParsePrivateKey parses a PKCS#8 private key that can sign.
func ParsePrivateKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return signer, nil
}

// SameCertificates reports whether a and b hold the same certificates in
// the same order.
func SameCertificates(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
