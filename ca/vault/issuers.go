package vault

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Issuer is one issuer of a PKI mount.
type Issuer struct {
	ID          string
	Name        string
	Default     bool
	Usage       string
	Certificate *x509.Certificate
	// Anchor is what workloads must trust for this issuer: the top of its
	// chain (its root, or itself when it is one).
	Anchor *x509.Certificate
	// Chain runs from the issuer up to, but excluding, Anchor.
	Chain []*x509.Certificate
}

// issuers reads every issuer of the mount and which one is the default.
func issuers(ctx context.Context, c *client, mount string) ([]Issuer, error) {
	list, err := c.list(ctx, mount+"/issuers")
	if err != nil {
		return nil, fmt.Errorf("list issuers: %w", err)
	}
	var ids []string
	if list != nil {
		raw, _ := list.Data["keys"].([]any)
		for _, k := range raw {
			if s, ok := k.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	defaultID := ""
	if cfg, err := c.read(ctx, mount+"/config/issuers"); err != nil {
		return nil, fmt.Errorf("read default issuer: %w", err)
	} else if cfg != nil {
		defaultID, _ = cfg.Data["default"].(string)
	}
	out := make([]Issuer, 0, len(ids))
	for _, id := range ids {
		s, err := c.read(ctx, mount+"/issuer/"+id+"/json")
		if err != nil {
			return nil, fmt.Errorf("read issuer %s: %w", id, err)
		}
		if s == nil {
			continue // deleted since the list
		}
		certPEM, _ := s.Data["certificate"].(string)
		certs, err := parsePEM(certPEM)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("issuer %s: certificate: %w", id, errors.Join(err, errors.New("none")))
		}
		var chain []*x509.Certificate
		if raw, ok := s.Data["ca_chain"].([]any); ok {
			for _, p := range raw {
				str, _ := p.(string)
				cs, err := parsePEM(str)
				if err != nil {
					return nil, fmt.Errorf("issuer %s: ca_chain: %w", id, err)
				}
				chain = append(chain, cs...)
			}
		}
		if len(chain) == 0 {
			chain = certs[:1]
		}
		name, _ := s.Data["issuer_name"].(string)
		usage, _ := s.Data["usage"].(string)
		out = append(out, Issuer{
			ID: id, Name: name, Default: id == defaultID, Usage: usage,
			Certificate: certs[0], Anchor: chain[len(chain)-1], Chain: chain[:len(chain)-1],
		})
	}
	slices.SortFunc(out, func(a, b Issuer) int { return a.Certificate.NotBefore.Compare(b.Certificate.NotBefore) })
	return out, nil
}

// anchors returns the distinct trust anchors of issuers.
func anchors(iss []Issuer) []*x509.Certificate {
	var out []*x509.Certificate
	for _, i := range iss {
		if !slices.ContainsFunc(out, i.Anchor.Equal) {
			out = append(out, i.Anchor)
		}
	}
	return out
}

func parsePEM(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(strings.TrimSpace(s))
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Old reports whether the issuer has signed and no longer does, as far as
// an agent can tell from what it may read (the issuer's JSON, not its
// usage): sworn ca activate marks the issuer it replaces in its name;
// one minted before the signing issuer was (a root made default by hand)
// is old too. Anything else that does not sign is prepared.
func (i Issuer) Old(signing Issuer) bool {
	if i.Default {
		return false
	}
	if retiredMark(i.Name) != "" {
		return true
	}
	// signing is the zero Issuer when the mount has no default issuer.
	return signing.Certificate != nil && i.Certificate.NotBefore.Before(signing.Certificate.NotBefore)
}

// Signing returns the default issuer of iss, if any.
func Signing(iss []Issuer) (Issuer, bool) {
	for _, i := range iss {
		if i.Default {
			return i, true
		}
	}
	return Issuer{}, false
}
