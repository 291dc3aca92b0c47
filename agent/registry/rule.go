package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/attest"
)

// Rule is a rule as configured.
type Rule struct {
	SPIFFEID  string
	Selectors []string
	TTL       time.Duration // 0 means the default SVID TTL
	DNSNames  []string
	Hint      string
	// FederatesWith names foreign trust domains whose bundles workloads
	// with this identity receive.
	FederatesWith []string
}

// FieldError says which field of a rule is wrong, so a config loader can
// point at its line.
type FieldError struct {
	Field string // spiffe_id, selectors, ttl, dns_names
	Index int    // position in a list field, else -1
	Err   error
}

func (e *FieldError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%s[%d]: %v", e.Field, e.Index, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Entry is one identity a workload is entitled to.
type Entry struct {
	ID            spiffeid.ID
	TTL           time.Duration
	DNSNames      []string
	Hint          string
	FederatesWith []spiffeid.TrustDomain
}

// Key identifies the SVID an entry needs: entries with the same key share
// one SVID.
func (e Entry) Key() string {
	return e.ID.String() + "|" + e.TTL.String() + "|" + strings.Join(e.DNSNames, ",")
}

// Compiled is a validated rule.
type Compiled struct {
	selectors attest.Set
	template  template
	entry     Entry // ID unset when the rule is a template
}

// Compile validates r for trust domain td.
func Compile(td spiffeid.TrustDomain, defaultTTL time.Duration, r Rule) (Compiled, error) {
	var c Compiled
	anyProcess := false
	for i, s := range r.Selectors {
		if s == AnySelector {
			if len(r.Selectors) > 1 {
				return c, &FieldError{Field: "selectors", Index: i, Err: errors.New(`"any" matches every process and cannot be combined with other selectors; remove it or the others`)}
			}
			anyProcess = true
			continue
		}
		sel, err := attest.ParseSelector(s)
		if err == nil {
			err = sel.Check()
		}
		if err != nil {
			return c, &FieldError{Field: "selectors", Index: i, Err: err}
		}
		c.selectors = append(c.selectors, sel)
	}
	c.selectors = attest.NewSet(c.selectors...)
	tmpl, err := parseTemplate(td, r.SPIFFEID)
	if err != nil {
		return c, &FieldError{Field: "spiffe_id", Index: -1, Err: err}
	}
	c.template = tmpl
	if tmpl.static() {
		c.entry.ID, _ = spiffeid.FromString(r.SPIFFEID) // checked by parseTemplate
		// A rule with neither selectors nor placeholders applies to every
		// caller. That must be said, not be what is left when a
		// selectors: line is deleted.
		if len(c.selectors) == 0 && !anyProcess {
			return c, &FieldError{Field: "selectors", Index: -1, Err: fmt.Errorf("a rule without selectors would give %s to every process that calls; list selectors (e.g. unix:uid:1000), or write selectors: [any] if every process is meant to have it", c.entry.ID)}
		}
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return c, &FieldError{Field: "ttl", Index: -1, Err: fmt.Errorf("%v is out of range [%v, %v]", ttl, MinTTL, MaxTTL)}
	}
	for i, name := range r.DNSNames {
		if err := checkDNSName(name); err != nil {
			return c, &FieldError{Field: "dns_names", Index: i, Err: err}
		}
	}
	for i, name := range r.FederatesWith {
		ftd, err := spiffeid.TrustDomainFromString(name)
		if err == nil && ftd == td {
			err = errors.New("a trust domain does not federate with itself")
		}
		if err != nil {
			return c, &FieldError{Field: "federates_with", Index: i, Err: err}
		}
		c.entry.FederatesWith = append(c.entry.FederatesWith, ftd)
	}
	c.entry.TTL = ttl
	c.entry.DNSNames = slices.Clone(r.DNSNames)
	c.entry.Hint = r.Hint
	return c, nil
}

// StaticID is the rule's SPIFFE ID when it has no placeholders.
func (c *Compiled) StaticID() (spiffeid.ID, bool) {
	return c.entry.ID, c.template.static()
}

// AnySelector, as a rule's only selector, makes the rule apply to every
// caller. A rule needs it (or a placeholder) to have no other selector.
const AnySelector = "any"

// SVID lifetimes sworn accepts: long enough to renew at half life without
// churn, short enough to stay short-lived.
const (
	MinTTL = time.Minute
	MaxTTL = 72 * time.Hour
)

// kinds returns the selector kinds the rule matches on or renders its ID
// from, each as "type:name" where name is the part of the value before its
// first ':' (unix:sha256:<hex> is of kind "unix:sha256").
func (c *Compiled) kinds() []string {
	var out []string
	for _, s := range c.selectors {
		name, _, _ := strings.Cut(s.Value, ":")
		out = append(out, s.Type+":"+name)
	}
	for _, p := range c.template.parts {
		if p.typ != "" {
			name, _, _ := strings.Cut(p.name, ":")
			out = append(out, p.typ+":"+name)
		}
	}
	return out
}

// selectorsOf returns the rule's selectors of type typ other than those
// named name: what a caller must have, of that type, for the rule to apply
// once the selector named name is known.
func (c *Compiled) selectorsOf(typ, name string) attest.Set {
	var out attest.Set
	for _, s := range c.selectors {
		if s.Type == typ && s.Value != name && !strings.HasPrefix(s.Value, name+":") {
			out = append(out, s)
		}
	}
	return out
}

// render returns the entry for a workload with the given selectors; the
// caller has checked that the rule applies.
func (c *Compiled) render(td spiffeid.TrustDomain, sel attest.Set) (Entry, error) {
	if c.template.static() {
		return c.entry, nil
	}
	id, err := c.template.render(td, sel)
	if err != nil {
		return Entry{}, err
	}
	e := c.entry
	e.ID = id
	return e, nil
}

func checkDNSName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("DNS name must have 1 to 253 characters")
	}
	for _, label := range strings.Split(strings.TrimPrefix(name, "*."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("DNS name %q has an empty or over-long label", name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("DNS name %q has the character %q", name, r)
			}
		}
	}
	return nil
}
