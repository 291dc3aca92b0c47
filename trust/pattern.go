package trust

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Pattern matches SPIFFE IDs. Its forms:
//
//	spiffe://td               every ID of trust domain td
//	spiffe://td/a/b           exactly that ID
//	spiffe://td/a/*/c         "*" is exactly one path segment
//	spiffe://td/a/**          "**" (last only) is one or more further segments
//
// Wildcards stand for whole segments only, and a pattern is validated when it
// is parsed: anything that is not a valid SPIFFE ID once its wildcards are
// filled in is refused with an error naming it, never left to match nothing.
type Pattern struct {
	raw      string
	td       spiffeid.TrustDomain
	segments []string // "" for the whole trust domain
	anyTail  bool     // ends in "**"
}

// ParsePattern parses s.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{raw: s}
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return p, fmt.Errorf("trust: pattern %q: must start with spiffe://", s)
	}
	host, path, hasPath := strings.Cut(rest, "/")
	td, err := spiffeid.TrustDomainFromString(host)
	if err != nil {
		return p, fmt.Errorf("trust: pattern %q: %w", s, err)
	}
	p.td = td
	if !hasPath {
		return p, nil
	}
	p.segments = strings.Split(path, "/")
	sample := make([]string, len(p.segments))
	for i, seg := range p.segments {
		switch {
		case seg == "**" && i == len(p.segments)-1:
			p.anyTail = true
			sample[i] = "x"
		case seg == "**":
			return p, fmt.Errorf("trust: pattern %q: ** may only be the last segment", s)
		case seg == "*":
			sample[i] = "x"
		case strings.Contains(seg, "*"):
			return p, fmt.Errorf("trust: pattern %q: a wildcard must be a whole segment (* or **), not %q", s, seg)
		default:
			sample[i] = seg
		}
	}
	if _, err := spiffeid.FromSegments(td, sample...); err != nil {
		return p, fmt.Errorf("trust: pattern %q: %w", s, err)
	}
	if p.anyTail {
		p.segments = p.segments[:len(p.segments)-1]
	}
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether id matches.
func (p Pattern) Match(id spiffeid.ID) bool {
	if id.TrustDomain() != p.td {
		return false
	}
	if p.segments == nil && !p.anyTail {
		return true // the whole trust domain
	}
	path := strings.TrimPrefix(id.Path(), "/")
	var got []string
	if path != "" {
		got = strings.Split(path, "/")
	}
	if p.anyTail {
		if len(got) <= len(p.segments) {
			return false
		}
		got = got[:len(p.segments)]
	} else if len(got) != len(p.segments) {
		return false
	}
	for i, seg := range p.segments {
		if seg != "*" && seg != got[i] {
			return false
		}
	}
	return true
}
