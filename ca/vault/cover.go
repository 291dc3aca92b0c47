package vault

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/sworn-id/sworn/ca"
)

// Vault caps a leaf at its issuer's NotAfter (leaf_not_after_behavior=
// truncate) and backdates it by the role's not_before_duration, so near
// the issuer's end every SVID is shorter than the last and is due for
// renewal the moment it arrives: a hot loop of sign calls, then, once the
// issuer has expired, certificates that do not chain. The backend checks
// the issuer first and refuses (ca.ErrExpired) any SVID it cannot cover
// for its full lifetime, without calling Vault.

// earliest returns the certificate of certs that expires first.
func earliest(certs ...*x509.Certificate) *x509.Certificate {
	var first *x509.Certificate
	for _, c := range certs {
		if c != nil && (first == nil || c.NotAfter.Before(first.NotAfter)) {
			first = c
		}
	}
	return first
}

// defaultIssuer returns the issuer Vault signs with (the role's issuer_ref
// is "default"); false before the issuers were first read. Needs v.mu.
func (v *CA) defaultIssuer() (Issuer, bool) {
	return Signing(v.issuers)
}

// issuerCovers returns a ca.ErrExpired error unless Vault's default issuer,
// and every certificate above it, is valid from now for a full ttl
// (ca.IssuerCover with need = ttl); nil also before the issuers were first
// read (Vault's answer decides then).
func (v *CA) issuerCovers(now time.Time, ttl time.Duration) error {
	v.mu.RLock()
	iss, ok := v.defaultIssuer()
	v.mu.RUnlock()
	if !ok {
		return nil
	}
	name := iss.Name
	if name == "" {
		name = iss.ID
	}
	subject := fmt.Sprintf("Vault's issuer %s (serial %s)", name, serial(iss.Certificate))
	limit := earliest(append([]*x509.Certificate{iss.Certificate, iss.Anchor}, iss.Chain...)...)
	if limit != iss.Certificate {
		subject = fmt.Sprintf("%q (serial %s), above Vault's issuer %s,", limit.Subject.CommonName, serial(limit), name)
	}
	rotate := fmt.Sprintf("rotate Vault's issuer (`sworn vault ca rotate`, then `sworn vault ca activate`, or vault write %s/root/rotate/internal)", v.cfg.PKIMount)
	switch ca.IssuerCover(iss.Certificate.NotBefore, limit.NotAfter, now, ttl) {
	case ca.CoverNotYetValid:
		return fmt.Errorf("vault ca: %w: %s is not valid until %s (check the clocks of Vault and of this node)",
			ca.ErrExpired, subject, iss.Certificate.NotBefore.UTC().Format(time.RFC3339))
	case ca.CoverExpired:
		return fmt.Errorf("vault ca: %w: %s expired at %s; %s",
			ca.ErrExpired, subject, limit.NotAfter.UTC().Format(time.RFC3339), rotate)
	case ca.CoverTooShort:
		return fmt.Errorf("vault ca: %w: %s expires at %s, before a full %s SVID; %s or lower svid.ttl",
			ca.ErrExpired, subject, limit.NotAfter.UTC().Format(time.RFC3339), ttl, rotate)
	}
	return nil
}

// intermediateCovers is issuerCovers for intermediate mode: Vault's issuer
// first (it caps every intermediate Vault signs), then the agent's own
// intermediate. An intermediate that is too short while Vault's issuer is
// not could not be renewed: the error then wraps why (health: Vault
// unreachable or refusing), or, if Vault is fine (health nil), says the
// intermediate is too short for the SVID TTL.
func (v *CA) intermediateCovers(inter *intermediate, now time.Time, ttl time.Duration, health error) error {
	if err := v.issuerCovers(now, ttl); err != nil {
		return err
	}
	limit := earliest(inter.chain...)
	// One not valid yet is SignLeaf's to refuse (ca.CheckIssuerLife).
	if c := ca.IssuerCover(limit.NotBefore, limit.NotAfter, now, ttl); c != ca.CoverExpired && c != ca.CoverTooShort {
		return nil
	}
	what := fmt.Sprintf("the agent's intermediate (serial %s) expires at %s, before a full %s SVID",
		serial(inter.cert), limit.NotAfter.UTC().Format(time.RFC3339), ttl)
	if health != nil {
		return fmt.Errorf("vault ca: %s, and Vault could not renew it: %w", what, health)
	}
	return fmt.Errorf("vault ca: %w: %s; it is renewed at half its life, so ca.vault.intermediate_ttl (%s) must be at least twice svid.ttl",
		ca.ErrExpired, what, v.cfg.IntermediateTTL)
}

// coverage is what Health reports after a successful refresh: whether the
// CA can still cover the last SVID lifetime asked for.
func (v *CA) coverage() error {
	ttl := time.Duration(v.lastTTL.Load())
	if ttl <= 0 {
		return nil
	}
	now := v.cfg.Clock.Now()
	if v.cfg.Mode == ModeIntermediate {
		v.mu.RLock()
		inter := v.inter
		v.mu.RUnlock()
		if inter == nil {
			return nil
		}
		return v.intermediateCovers(inter, now, ttl, nil)
	}
	return v.issuerCovers(now, ttl)
}

func serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
