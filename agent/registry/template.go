package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/attest"
)

// template is a SPIFFE ID with {type:name} placeholders in its path.
type template struct {
	parts []part
}

type part struct {
	literal   string
	typ, name string // a placeholder when typ != ""
}

func (t template) static() bool {
	return len(t.parts) <= 1 && (len(t.parts) == 0 || t.parts[0].typ == "")
}

func parseTemplate(td spiffeid.TrustDomain, s string) (template, error) {
	var t template
	if s == "" {
		return t, errors.New("is required")
	}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.ContainsRune(rest, '}') {
				return t, fmt.Errorf("%q has a '}' without '{'", s)
			}
			t.parts = append(t.parts, part{literal: rest})
			break
		}
		if open > 0 {
			if strings.ContainsRune(rest[:open], '}') {
				return t, fmt.Errorf("%q has a '}' without '{'", s)
			}
			t.parts = append(t.parts, part{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("%q has a '{' without '}'", s)
		}
		inner := rest[open+1 : open+end]
		typ, name, ok := strings.Cut(inner, ":")
		if !ok {
			return t, fmt.Errorf("placeholder {%s} is not of the form {type:name}, e.g. {unix:uid}", inner)
		}
		base, _, _ := strings.Cut(name, ":")
		if err := attest.CheckName(typ, base); err != nil {
			return t, fmt.Errorf("placeholder {%s}: %w", inner, err)
		}
		t.parts = append(t.parts, part{typ: typ, name: name})
		rest = rest[open+end+1:]
	}
	// Placeholders must sit in the path: the text before the first one must
	// already name the trust domain and start the path.
	prefix := ""
	if len(t.parts) > 0 && t.parts[0].typ == "" {
		prefix = t.parts[0].literal
	}
	if !t.static() && !strings.HasPrefix(prefix, td.IDString()+"/") {
		return t, fmt.Errorf("%q must start with %s/ before any placeholder", s, td.IDString())
	}
	// A sample rendering catches a malformed ID now rather than per workload.
	id, err := spiffeid.FromString(t.sample())
	if err != nil {
		return t, fmt.Errorf("%q is not a valid SPIFFE ID: %w", s, err)
	}
	if id.TrustDomain() != td {
		return t, fmt.Errorf("%q is not in trust domain %q", s, td)
	}
	// The trust domain's own ID names no workload, and the X.509-SVID
	// profile gives a leaf a path: go-spiffe refuses a whole response that
	// carries one without.
	if id.Path() == "" {
		return t, fmt.Errorf("%q names the trust domain, not a workload; give it a path, e.g. %s/web", s, td.IDString())
	}
	return t, nil
}

func (t template) sample() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.typ == "" {
			b.WriteString(p.literal)
		} else {
			b.WriteString("x")
		}
	}
	return b.String()
}

func (t template) render(td spiffeid.TrustDomain, sel attest.Set) (spiffeid.ID, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.typ == "" {
			b.WriteString(p.literal)
			continue
		}
		v, err := sel.Lookup(p.typ, p.name)
		if err != nil {
			return spiffeid.ID{}, err
		}
		b.WriteString(v)
	}
	id, err := spiffeid.FromString(b.String())
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("rendered %q: %w", b.String(), err)
	}
	if id.TrustDomain() != td {
		return spiffeid.ID{}, fmt.Errorf("rendered %q is outside trust domain %q", id, td)
	}
	return id, nil
}
