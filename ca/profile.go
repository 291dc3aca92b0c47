package ca

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// CheckX509SVID verifies that chain (leaf first) is an X.509-SVID for id that
// chains to one of roots at now, following the profile sworn promises:
// exactly one URI SAN equal to id; leaf basicConstraints present with
// cA=false; keyUsage critical with digitalSignature and neither keyCertSign
// nor cRLSign; EKU serverAuth and clientAuth; every other certificate a CA
// with keyCertSign. Errors wrap ErrBadCertificate.
func CheckX509SVID(chain []*x509.Certificate, id spiffeid.ID, roots []*x509.Certificate, now time.Time) error {
	if err := checkX509SVID(chain, id, roots, now); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	return nil
}

func checkX509SVID(chain []*x509.Certificate, id spiffeid.ID, roots []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("empty chain")
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 {
		return fmt.Errorf("leaf has %d URI SANs, want exactly one", len(leaf.URIs))
	}
	if got := leaf.URIs[0].String(); got != id.String() {
		return fmt.Errorf("leaf URI SAN is %q, want %q", got, id)
	}
	if !leaf.BasicConstraintsValid {
		return errors.New("leaf has no basicConstraints extension")
	}
	if leaf.IsCA {
		return errors.New("leaf has cA=true")
	}
	if !criticalKeyUsage(leaf) {
		return errors.New("leaf keyUsage is missing or not critical")
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("leaf keyUsage lacks digitalSignature")
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return errors.New("leaf keyUsage has keyCertSign or cRLSign")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("leaf extKeyUsage lacks serverAuth or clientAuth")
	}
	for i, c := range chain[1:] {
		if !c.BasicConstraintsValid || !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return fmt.Errorf("chain certificate %d is not a CA with keyCertSign", i+1)
		}
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("leaf does not chain to the trust bundle: %w", err)
	}
	return nil
}

func criticalKeyUsage(c *x509.Certificate) bool {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidKeyUsage) {
			return ext.Critical
		}
	}
	return false
}
