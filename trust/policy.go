package trust

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

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

// NewHTTPRule builds an HTTP rule.
func NewHTTPRule(id string, methods []string, path string) (HTTPRule, error) {
	pat, err := ParsePattern(id)
	if err != nil {
		return HTTPRule{}, err
	}
	if !strings.HasPrefix(path, "/") {
		return HTTPRule{}, fmt.Errorf("path %q must start with /", path)
	}
	if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
		return HTTPRule{}, fmt.Errorf("path %q: * may only end the path", path)
	}
	for i, m := range methods {
		methods[i] = strings.ToUpper(m)
	}
	return HTTPRule{ID: pat, Methods: methods, Path: path}, nil
}

// Merge returns a policy with the entries of p and q.
func (p *Policy) Merge(q *Policy) *Policy {
	return &Policy{
		allow: append(slices.Clone(p.allow), q.allow...),
		deny:  append(slices.Clone(p.deny), q.deny...),
		http:  append(slices.Clone(p.http), q.http...),
	}
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
func (p *Policy) DecideHTTP(id spiffeid.ID, r *http.Request) Decision {
	if len(p.http) == 0 {
		return p.Decide(id)
	}
	for _, d := range p.deny {
		if d.Match(id) {
			return Decision{ID: id, Rule: "deny " + d.String()}
		}
	}
	for _, rule := range p.http {
		if rule.Match(id, r.Method, r.URL.Path) {
			return Decision{ID: id, Allowed: true, Rule: "allow " + rule.String()}
		}
	}
	return Decision{ID: id, Rule: fmt.Sprintf("no http rule allows %s %s", r.Method, r.URL.Path)}
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
