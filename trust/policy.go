package trust

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"
)

// Policy says which peers may connect. Deny entries win over allow entries;
// a policy with no allow entry admits nobody. A Policy is immutable; a Guard
// holds the one in force.
type Policy struct {
	allow []Pattern
	deny  []Pattern
	http  []HTTPRule
}

// HTTPRule admits requests from peers matching ID whose method is one of
// Methods (any, if empty) and whose path has the prefix Path. A Path ending
// in "*" is a prefix (/api/orders/* matches /api/orders/42); otherwise it
// must match exactly.
type HTTPRule struct {
	ID      Pattern
	Methods []string
	Path    string
}

// Decision is the outcome of checking a peer.
type Decision struct {
	ID      spiffeid.ID
	Allowed bool
	// Rule is the entry that decided, as written ("deny spiffe://…",
	// "allow spiffe://…"), or why none did.
	Rule string
	// Path is, for an HTTP decision, the canonical path decided on (see
	// CanonicalPath): the only path a proxy may forward. It is empty when
	// the request target was refused as not canonical.
	Path string
}

// NewPolicy builds a policy from allow and deny patterns.
func NewPolicy(allow, deny []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range allow {
		pat, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		p.allow = append(p.allow, pat)
	}
	for _, s := range deny {
		pat, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		p.deny = append(p.deny, pat)
	}
	return p, nil
}

// policyFile is the YAML form of a policy:
//
//	allow: [spiffe://prod.example/ns/payments/**]
//	deny:  [spiffe://prod.example/ns/payments/sa/legacy]
//	http:
//	  - id: spiffe://prod.example/ns/web/sa/frontend
//	    methods: [GET]
//	    path: /api/orders/*
type policyFile struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	HTTP  []struct {
		ID      string   `yaml:"id"`
		Methods []string `yaml:"methods"`
		Path    string   `yaml:"path"`
	} `yaml:"http"`
}

// ParsePolicy reads a YAML policy, strictly: unknown keys and bad patterns
// are errors.
func ParsePolicy(data []byte) (*Policy, error) {
	var f policyFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("trust: policy: %w", err)
	}
	p, err := NewPolicy(f.Allow, f.Deny)
	if err != nil {
		return nil, err
	}
	for i, r := range f.HTTP {
		rule, err := NewHTTPRule(r.ID, r.Methods, r.Path)
		if err != nil {
			return nil, fmt.Errorf("trust: policy: http[%d]: %w", i, err)
		}
		p.http = append(p.http, rule)
	}
	return p, nil
}

// NewHTTPRule builds an HTTP rule. Methods are HTTP method tokens, matched
// in upper case; none, or the single method "*", means any method. The path
// is written decoded ("/files/café/*", not "/files/caf%C3%A9/*") and must
// already be canonical (see CanonicalPath): a rule that no canonical
// request path could ever match is an error, not a rule that silently
// admits nothing.
func NewHTTPRule(id string, methods []string, path string) (HTTPRule, error) {
	pat, err := ParsePattern(id)
	if err != nil {
		return HTTPRule{}, err
	}
	if err := checkRulePath(path); err != nil {
		return HTTPRule{}, err
	}
	if len(methods) == 1 && methods[0] == "*" {
		methods = nil
	}
	upper := make([]string, 0, len(methods))
	for _, m := range methods {
		if m == "*" {
			return HTTPRule{}, fmt.Errorf("method %q: * means any method and must stand alone", m)
		}
		if !isToken(m) {
			return HTTPRule{}, fmt.Errorf("method %q is not an HTTP method (a token such as GET; use * alone for any method)", m)
		}
		upper = append(upper, strings.ToUpper(m))
	}
	if len(upper) == 0 {
		upper = nil
	}
	return HTTPRule{ID: pat, Methods: upper, Path: path}, nil
}

// checkRulePath accepts a rule path only if it is its own canonical form,
// so that what the operator wrote is what requests are compared with.
func checkRulePath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q must start with /", path)
	}
	if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
		return fmt.Errorf("path %q: * may only end the path", path)
	}
	// A prefix's last segment is partial ("/api/v*" admits /api/v1), so
	// it is checked as one possible completion of it.
	sample := path
	if prefix, ok := strings.CutSuffix(path, "*"); ok {
		sample = prefix + "x"
	}
	if strings.ContainsAny(sample, "%?#") {
		return fmt.Errorf("path %q: write the path decoded, without %%-escapes, query or fragment", path)
	}
	canon, err := canonicalDecoded(sample)
	if err != nil {
		return fmt.Errorf("path %q: %w", path, err)
	}
	if canon != sample {
		return fmt.Errorf("path %q has an empty segment (//): request paths are compared with slashes merged, so it could never match", path)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Merge returns a policy with the entries of p and q.
func (p *Policy) Merge(q *Policy) *Policy {
	return &Policy{
		allow: append(slices.Clone(p.allow), q.allow...),
		deny:  append(slices.Clone(p.deny), q.deny...),
		http:  append(slices.Clone(p.http), q.http...),
	}
}

// AdmitsNobody reports whether p has neither an allow entry nor an HTTP
// rule, so that every peer is refused: a proxy refuses to start with such
// a policy unless told to (sworn proxy --allow-none).
func (p *Policy) AdmitsNobody() bool {
	return len(p.allow) == 0 && len(p.http) == 0
}

// WithHTTPRules returns a copy of p with rules added.
func (p *Policy) WithHTTPRules(rules ...HTTPRule) *Policy {
	q := *p
	q.http = append(slices.Clone(p.http), rules...)
	return &q
}

// ForConnections returns the policy that admits a connection in HTTP mode:
// the allow entries plus every HTTP rule's peer pattern, so that a peer
// allowed some requests can connect; each request is then decided by
// DecideHTTP.
func (p *Policy) ForConnections() *Policy {
	q := *p
	q.allow = slices.Clone(p.allow)
	for _, r := range p.http {
		q.allow = append(q.allow, r.ID)
	}
	return &q
}

// Decide checks a peer.
func (p *Policy) Decide(id spiffeid.ID) Decision {
	for _, d := range p.deny {
		if d.Match(id) {
			return Decision{ID: id, Rule: "deny " + d.String()}
		}
	}
	for _, a := range p.allow {
		if a.Match(id) {
			return Decision{ID: id, Allowed: true, Rule: "allow " + a.String()}
		}
	}
	if len(p.allow) == 0 {
		return Decision{ID: id, Rule: "no allow entry: the policy admits nobody"}
	}
	return Decision{ID: id, Rule: "no allow entry matches"}
}

// DecideHTTP checks a request from an admitted peer against the HTTP rules.
// Deny entries still win; a policy without HTTP rules decides by peer alone.
//
// The path matched is CanonicalPath of the request target as it came on
// the wire (r.RequestURI, or r.URL.RequestURI() for a request built by a
// client), never the raw r.URL.Path: a target that is not canonical is
// refused whatever the rules say, so a backend that normalises paths
// cannot be steered outside what a rule allows. A caller that forwards the
// request must forward that canonical path (Decision.Path), and nothing
// else; see CanonicalPath.
func (p *Policy) DecideHTTP(id spiffeid.ID, r *http.Request) Decision {
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI()
	}
	path, err := CanonicalPath(target)
	if err != nil {
		return Decision{ID: id, Rule: err.Error()}
	}
	return p.DecideHTTPPath(id, r.Method, path)
}

// DecideHTTPPath is DecideHTTP for a method and a path that CanonicalPath
// returned. It must never be given a raw request path: matching one is
// exactly the bypass CanonicalPath exists to prevent.
func (p *Policy) DecideHTTPPath(id spiffeid.ID, method, path string) Decision {
	if len(p.http) == 0 {
		d := p.Decide(id)
		d.Path = path
		return d
	}
	for _, d := range p.deny {
		if d.Match(id) {
			return Decision{ID: id, Path: path, Rule: "deny " + d.String()}
		}
	}
	for _, rule := range p.http {
		if rule.Match(id, method, path) {
			return Decision{ID: id, Path: path, Allowed: true, Rule: "allow " + rule.String()}
		}
	}
	return Decision{ID: id, Path: path, Rule: fmt.Sprintf("no http rule allows %s %s", method, path)}
}

// Match reports whether the rule admits the request.
func (r HTTPRule) Match(id spiffeid.ID, method, path string) bool {
	if !r.ID.Match(id) || (len(r.Methods) > 0 && !slices.Contains(r.Methods, method)) {
		return false
	}
	if prefix, ok := strings.CutSuffix(r.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == r.Path
}

// String renders the rule as in --allow-http.
func (r HTTPRule) String() string {
	methods := "*"
	if len(r.Methods) > 0 {
		methods = strings.Join(r.Methods, ",")
	}
	return r.ID.String() + " " + methods + " " + r.Path
}

// ParseHTTPRule parses "PATTERN METHODS PATH", e.g.
// "spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*" (METHODS may be *).
func ParseHTTPRule(s string) (HTTPRule, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return HTTPRule{}, errors.New("trust: http rule must be \"PATTERN METHODS PATH\"")
	}
	var methods []string
	if f[1] != "*" {
		methods = strings.Split(f[1], ",")
	}
	r, err := NewHTTPRule(f[0], methods, f[2])
	if err != nil {
		return HTTPRule{}, fmt.Errorf("trust: http rule %q: %w", s, err)
	}
	return r, nil
}

// ErrPathRefused is wrapped by the error CanonicalPath returns for a
// request target it refuses; an HTTP server answers it with 400.
var ErrPathRefused = errors.New("trust: request path refused")

// CanonicalPath returns the path HTTP rules are matched against for a
// request target as it came on the wire (http.Request.RequestURI), or an
// error wrapping ErrPathRefused saying why the target is refused. It is
// the one definition of "the path" that both the decision and the
// forwarded request use, so a backend that resolves dot-segments, decodes
// escapes or merges slashes serves exactly what was decided on.
//
// The target must be origin-form: a path starting with /, then an
// optional ?query, which is not part of the path and is left alone.
// Absolute-form (http://host/path), authority-form (CONNECT host:port) and
// asterisk-form are refused: they would let the client name a host, and a
// sidecar has one backend. In the path:
//
//   - escapes (%XX, either case) are decoded; a % not followed by two hex
//     digits is refused;
//   - refused outright, raw or escaped: \ (a separator to Windows and some
//     frameworks), %2F (a / that is not a separator, until a backend
//     decodes it), %25 (a backend that decodes twice would see another
//     path), NUL and every other control character, # (fragments are never
//     sent), raw bytes outside printable ASCII (send them escaped);
//   - the decoded path must be valid UTF-8, so overlong forms such as
//     %C0%AE for "." are refused, and must not contain a character that
//     Unicode compatibility normalisation (NFKC) turns into . / \ % ; ? #
//     (fullwidth ．／ and the like), for backends that normalise;
//   - a dot segment is refused: a segment that is ".", "..", or only dots
//     and spaces (Windows trims trailing dots and spaces), also when
//     followed by a ;parameter ("..;" is ".." to Tomcat and Spring),
//     whether written raw or escaped;
//   - empty segments are merged, as nginx does by default: //a//b/ is /a/b/.
//
// The result is decoded (as http.Request.URL.Path is): "/api/orders/42".
// A proxy forwards it re-encoded by net/url (url.URL{Path: p}.EscapedPath),
// whose decoding is p again, and whose CanonicalPath is p.
func CanonicalPath(target string) (string, error) {
	if !strings.HasPrefix(target, "/") {
		return "", fmt.Errorf("%w: request target %q is not origin-form (a path starting with /); absolute-form, authority-form and * are not accepted", ErrPathRefused, target)
	}
	if strings.IndexByte(target, '#') >= 0 {
		return "", fmt.Errorf("%w: # (a fragment) in the request target", ErrPathRefused)
	}
	raw, _, _ := strings.Cut(target, "?")
	decoded, err := decodePath(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPathRefused, err)
	}
	canon, err := canonicalDecoded(decoded)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPathRefused, err)
	}
	return canon, nil
}

// decodePath percent-decodes a raw path, refusing the bytes that must not
// be in one, raw or escaped.
func decodePath(raw string) (string, error) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || unhex(raw[i+1]) < 0 || unhex(raw[i+2]) < 0 {
				return "", fmt.Errorf("%q at byte %d is not a %%XX escape", raw[i:min(i+3, len(raw))], i)
			}
			d := byte(unhex(raw[i+1])<<4 | unhex(raw[i+2]))
			switch d {
			case '/':
				return "", fmt.Errorf("encoded / (%s) in the path", raw[i:i+3])
			case '%':
				return "", fmt.Errorf("%s (an encoded %%) in the path: a backend that decodes twice would see another path", raw[i:i+3])
			}
			b.WriteByte(d)
			i += 2
		case c < 0x21 || c > 0x7e:
			return "", fmt.Errorf("byte 0x%02X in the path: percent-encode it", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// canonicalDecoded checks a decoded path and merges its empty segments.
func canonicalDecoded(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", errors.New("the path is not valid UTF-8 once decoded (overlong and truncated sequences are refused)")
	}
	for _, r := range p {
		switch {
		case r == '\\':
			return "", errors.New(`\ in the path`)
		case r < 0x20 || r == 0x7f:
			return "", fmt.Errorf("control character 0x%02X in the path", r)
		case r >= 0x80 && slices.Contains(nfkcSpecial, r):
			return "", fmt.Errorf("U+%04X in the path: a backend that normalises Unicode (NFKC) would read it as path syntax", r)
		}
	}
	segs := strings.Split(p[1:], "/")
	kept := make([]string, 0, len(segs))
	for _, seg := range segs {
		if seg == "" {
			continue
		}
		name, _, _ := strings.Cut(seg, ";")
		if name != "" && strings.Trim(name, ". ") == "" {
			return "", fmt.Errorf("dot segment %q in the path", seg)
		}
		kept = append(kept, seg)
	}
	out := "/" + strings.Join(kept, "/")
	if len(kept) > 0 && strings.HasSuffix(p, "/") {
		out += "/"
	}
	return out, nil
}

// nfkcSpecial are the characters whose NFKC form contains . / \ % ; ? # or
// a control character (computed with golang.org/x/text/unicode/norm over
// all of Unicode): U+2024 ONE DOT LEADER is "." to a backend that
// normalises, U+FF0F FULLWIDTH SOLIDUS is "/", and so on.
var nfkcSpecial = []rune{
	0x037E, 0x2024, 0x2025, 0x2026, 0x2047, 0x2048, 0x2049, 0x2100, 0x2101, 0x2105, 0x2106,
	0x2488, 0x2489, 0x248A, 0x248B, 0x248C, 0x248D, 0x248E, 0x248F, 0x2490, 0x2491, 0x2492,
	0x2493, 0x2494, 0x2495, 0x2496, 0x2497, 0x2498, 0x2499, 0x249A, 0x249B, 0x33C2, 0x33C7,
	0x33D8, 0xFE14, 0xFE16, 0xFE19, 0xFE30, 0xFE52, 0xFE54, 0xFE56, 0xFE5F, 0xFE68, 0xFE6A,
	0xFF03, 0xFF05, 0xFF0E, 0xFF0F, 0xFF1B, 0xFF1F, 0xFF3C, 0x1F100,
}
