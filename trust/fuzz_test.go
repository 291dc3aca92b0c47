package trust_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

// sampleID fills a pattern's wildcards (* with one segment, ** with two)
// to get an ID the pattern must match.
func sampleID(t *testing.T, pattern string) spiffeid.ID {
	t.Helper()
	rest := strings.TrimPrefix(pattern, "spiffe://")
	host, path, hasPath := strings.Cut(rest, "/")
	if !hasPath {
		path = "x"
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch s {
		case "*":
			segs[i] = "x"
		case "**":
			segs[i] = "x/y"
		}
	}
	id, err := spiffeid.FromString("spiffe://" + host + "/" + strings.Join(segs, "/"))
	if err != nil {
		t.Fatalf("pattern %q was accepted but its sample ID is not an ID: %v", pattern, err)
	}
	return id
}

var patternSeeds = []string{
	"spiffe://prod.example", "spiffe://prod.example/ns/web/sa/api", "spiffe://prod.example/ns/*/sa/api",
	"spiffe://prod.example/ns/payments/**", "spiffe://prod.example/**", "spiffe://prod.example/",
	"spiffe://prod.example/a//b", "spiffe://prod.example/../x", "spiffe://prod.example/**/x",
	"spiffe://prod.example/sa-*", "spiffe://Prod.Example/x", "https://prod.example/x", "spiffe://", "spiffe:///x",
	"spiffe://prod.example/a%2Fb", "spiffe://prod.example:8080/x", "spiffe://user@prod.example/x",
}

// FuzzParsePattern: a refusal names the pattern; an accepted pattern
// renders as written, parses again to the same thing, matches the ID its
// wildcards describe, and never matches another trust domain.
func FuzzParsePattern(f *testing.F) {
	for _, s := range patternSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := trust.ParsePattern(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %q does not name the pattern %q", err, s)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q, want %q", p.String(), s)
		}
		id := sampleID(t, s)
		if !p.Match(id) {
			t.Fatalf("%q does not match %s, which its wildcards describe", s, id)
		}
		other := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("other.fuzz.invalid"), id.Path())
		if other.TrustDomain() != id.TrustDomain() && p.Match(other) {
			t.Fatalf("%q matches %s, in another trust domain", s, other)
		}
	})
}

// FuzzParseHTTPRule: an accepted rule round-trips through String, its
// path is canonical (so a request can reach it), and it admits the
// request it describes.
func FuzzParseHTTPRule(f *testing.F) {
	for _, s := range []string{
		"spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*", "spiffe://td/ns/ops/** * /healthz",
		"spiffe://td/x GET /", "spiffe://td/x GET /*", "spiffe://td/x get /files/café/*", "spiffe://td/x GET /api/../admin/*",
		"spiffe://td/x GET /api//x", "spiffe://td/x GET,,HEAD /a", "spiffe://td/x GET /a%2fb", "spiffe://td/x GET /a;b",
		"spiffe://td/x GET /a/..;/b", "spiffe://td/x GET api", "spiffe://td/x GET /a/*/b", "spiffe://td/* POST /x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := trust.ParseHTTPRule(s)
		if err != nil {
			return
		}
		again, err := trust.ParseHTTPRule(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("%q renders as %q, which parses to %q, %v", s, r.String(), again.String(), err)
		}
		path, prefix := strings.CutSuffix(r.Path, "*")
		if prefix {
			path += "x"
		}
		wire := (&url.URL{Path: path}).EscapedPath()
		if c, err := trust.CanonicalPath(wire); err != nil || c != path {
			t.Fatalf("rule path %q: its request %q canonicalises to %q, %v; the rule could never match", r.Path, wire, c, err)
		}
		method := "GET"
		if len(r.Methods) > 0 {
			method = r.Methods[0]
		}
		if !r.Match(sampleID(t, r.ID.String()), method, path) {
			t.Fatalf("%q does not admit %s %s", s, method, path)
		}
	})
}

// FuzzParsePolicy: any YAML either parses or is refused; a parsed policy
// gives decisions that say why, admits for connections at least what it
// admits, and without HTTP rules decides an HTTP request as the peer.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"allow: [spiffe://prod.example/ns/payments/**]\ndeny: [spiffe://prod.example/ns/payments/sa/legacy]\n",
		"http:\n  - id: spiffe://td/ns/web/sa/frontend\n    methods: [GET]\n    path: /api/orders/*\n",
		"allow: [spiffe://td]\nhttp:\n  - id: spiffe://td/**\n    path: /healthz\n",
		"allow: [spiffe://prod.example/x]\nalow: []\n", "allow: spiffe://td\n", "http: [{}]\n", "{", "",
		"deny: [spiffe://td]\nallow: [spiffe://td/**]\n", "http:\n  - id: spiffe://td/x\n    methods: ['*']\n    path: /a\n",
	} {
		f.Add([]byte(s))
	}
	ids := []spiffeid.ID{
		spiffeid.RequireFromString("spiffe://td/ns/web/sa/frontend"), spiffeid.RequireFromString("spiffe://td/x"),
		spiffeid.RequireFromString("spiffe://prod.example/ns/payments/sa/legacy"), spiffeid.RequireFromString("spiffe://prod.example/ns/payments/sa/api"),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := trust.ParsePolicy(data)
		if err != nil {
			return
		}
		conns := p.ForConnections()
		noHTTP, _ := trust.NewPolicy(nil, nil)
		merged := noHTTP.Merge(p)
		for _, id := range ids {
			d := p.Decide(id)
			if d.Allowed != strings.HasPrefix(d.Rule, "allow ") || d.Rule == "" {
				t.Fatalf("%s: decision %+v does not say why", id, d)
			}
			if d.Allowed && !conns.Decide(id).Allowed {
				t.Fatalf("%s: allowed, but not for connections", id)
			}
			if m := merged.Decide(id); m != d {
				t.Fatalf("%s: merging with an empty policy changed %+v to %+v", id, d, m)
			}
			h := p.DecideHTTPPath(id, "GET", "/api/orders/1")
			if h.Allowed && !conns.Decide(id).Allowed {
				t.Fatalf("%s: a request is allowed from a peer that cannot connect", id)
			}
		}
	})
}

// attackTargets are request targets that reach /admin through a rule for
// /api/orders/* on some backend, and some that are harmless.
var attackTargets = []string{
	"/api/orders/42", "/api/orders/../../admin/secret.txt", "/api/orders/%2e%2e/%2e%2e/admin/secret.txt",
	"/api/orders/%2E%2E/%2E%2E/admin", "/api/orders/..%2f..%2fadmin", "/api/orders/..%2F..%2Fadmin",
	"/api/orders/.%2e/admin", "/api/orders/..;/..;/admin", "/api/orders/..%3b/admin", `/api/orders/..\..\admin`,
	"/api/orders/..%5c..%5cadmin", "/api/orders/x%00/../../admin", "/api/orders/%252e%252e/admin",
	"/api/orders/%c0%ae%c0%ae/admin", "/api/orders/%ef%bc%8e%ef%bc%8e/admin", "/api/orders/x#/../../admin",
	"http://host/api/orders/../../admin", "host:443", "*", "//api//orders//42", "/api/orders//..//admin",
	"/api/orders/%34%32", "/api/orders/caf%C3%A9", "/api/orders/?next=/../../admin", "/api/orders/...",
	"/api/orders/..%20", "/api/orders/%2e", "/api/orders/;/../admin", "/api/orders/%3F%23",
}

// FuzzCanonicalPath: a canonical path has no dot segment, no empty
// segment, nothing a second decoding would change; re-encoded for the
// wire it decodes to itself and canonicalises to itself, and a backend
// that decodes and resolves dot segments serves exactly it.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range attackTargets {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		c, err := trust.CanonicalPath(target)
		if err != nil {
			if !errors.Is(err, trust.ErrPathRefused) {
				t.Fatalf("CanonicalPath(%q): %v does not wrap ErrPathRefused", target, err)
			}
			return
		}
		if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") || !utf8.ValidString(c) || strings.ContainsAny(c, "%\\\x00") {
			t.Fatalf("CanonicalPath(%q) = %q, not canonical", target, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if name, _, _ := strings.Cut(seg, ";"); name != "" && strings.Trim(name, ". ") == "" {
				t.Fatalf("CanonicalPath(%q) = %q keeps dot segment %q", target, c, seg)
			}
		}
		wire := (&url.URL{Path: c}).EscapedPath()
		if again, err := trust.CanonicalPath(wire); err != nil || again != c {
			t.Fatalf("CanonicalPath(%q) = %q, forwarded as %q, which canonicalises to %q, %v", target, c, wire, again, err)
		}
		if served, ok := testutil.ResolvePath(wire); !ok || served != c {
			t.Fatalf("CanonicalPath(%q) = %q, forwarded as %q, which a resolving backend serves as %q", target, c, wire, served)
		}
		// It is also how Go decodes the client's path, with slashes merged.
		raw, _, _ := strings.Cut(target, "?")
		if served, ok := testutil.ResolvePath(raw); !ok || served != c {
			t.Fatalf("CanonicalPath(%q) = %q, but the client's path decodes to %q", target, c, served)
		}
	})
}
