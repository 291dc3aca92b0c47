package trust_test

import (
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/trust"
)

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		target  string
		want    string
		wantErr string // a fragment of the error; "" means accepted
	}{
		{target: "/", want: "/"},
		{target: "/api/orders/42", want: "/api/orders/42"},
		{target: "/api/orders/42?x=/../../admin#", wantErr: "fragment"},
		{target: "/api/orders/42?next=/../../admin", want: "/api/orders/42"},
		{target: "/api/orders/", want: "/api/orders/"},
		{target: "//api//orders///42//", want: "/api/orders/42/"},
		{target: "//", want: "/"},
		{target: "/api/%6Frders/%34%32", want: "/api/orders/42"},
		{target: "/files/caf%C3%A9", want: "/files/café"},
		{target: "/a;b=c/d", want: "/a;b=c/d"},
		{target: "/.well-known/x", want: "/.well-known/x"},
		{target: "/a/..b/c..", want: "/a/..b/c.."},
		{target: "/a/%3F%23", want: "/a/?#"},
		{target: "/a/%3F", want: "/a/?"},

		{target: "/a/../b", wantErr: `dot segment ".."`},
		{target: "/a/./b", wantErr: `dot segment "."`},
		{target: "/a/..", wantErr: "dot segment"},
		{target: "/..", wantErr: "dot segment"},
		{target: "/a/%2e%2e/b", wantErr: "dot segment"},
		{target: "/a/%2E%2E/b", wantErr: "dot segment"},
		{target: "/a/.%2E/b", wantErr: "dot segment"},
		{target: "/a/..;/b", wantErr: "dot segment"},
		{target: "/a/..;jsessionid=x/b", wantErr: "dot segment"},
		{target: "/a/..%3B/b", wantErr: "dot segment"},
		{target: "/a/.../b", wantErr: "dot segment"},
		{target: "/a/..%20/b", wantErr: "dot segment"},
		{target: "/a/..%2fb", wantErr: "encoded / (%2f)"},
		{target: "/a/..%2Fb", wantErr: "encoded / (%2F)"},
		{target: `/a\b`, wantErr: `\ in the path`},
		{target: "/a%5cb", wantErr: `\ in the path`},
		{target: "/a%5Cb", wantErr: `\ in the path`},
		{target: "/a%00b", wantErr: "control character 0x00"},
		{target: "/a%0d%0ab", wantErr: "control character 0x0D"},
		{target: "/a%7f", wantErr: "control character 0x7F"},
		{target: "/a%252e%252e", wantErr: "%25"},
		{target: "/a%2", wantErr: "not a %XX escape"},
		{target: "/a%zz", wantErr: "not a %XX escape"},
		{target: "/a%c0%ae%c0%ae/b", wantErr: "not valid UTF-8"},
		{target: "/a%e0%80%ae", wantErr: "not valid UTF-8"},
		{target: "/a%c3", wantErr: "not valid UTF-8"},
		{target: "/a/%ef%bc%8e%ef%bc%8e/b", wantErr: "U+FF0E"},
		{target: "/a%ef%bc%8fb", wantErr: "U+FF0F"},
		{target: "/a%e2%80%a5", wantErr: "U+2025"},
		{target: "/caf\xc3\xa9", wantErr: "byte 0xC3"},
		{target: "/a b", wantErr: "byte 0x20"},
		{target: "/a#b", wantErr: "fragment"},
		{target: "http://host/a/../b", wantErr: "not origin-form"},
		{target: "http://host/a", wantErr: "not origin-form"},
		{target: "host:443", wantErr: "not origin-form"},
		{target: "*", wantErr: "not origin-form"},
		{target: "", wantErr: "not origin-form"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got, err := trust.CanonicalPath(tt.target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, trust.ErrPathRefused) {
					t.Fatalf("CanonicalPath(%q) = %q, %v; want an ErrPathRefused saying %q", tt.target, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want %q", tt.target, got, err, tt.want)
			}
		})
	}
}

// TestDecideHTTPMatchesTheCanonicalPath: the rule sees the canonical path,
// never the raw one, and a target that is not canonical is refused
// whatever the rules say.
func TestDecideHTTPMatchesTheCanonicalPath(t *testing.T) {
	p, err := trust.ParsePolicy([]byte(`
http:
  - id: spiffe://td/web
    methods: [GET]
    path: /api/orders/*
  - id: spiffe://td/web
    path: /healthz
`))
	if err != nil {
		t.Fatal(err)
	}
	web := spiffeid.RequireFromString("spiffe://td/web")
	tests := []struct {
		target   string
		allowed  bool
		wantPath string
	}{
		{target: "/api/orders/42", allowed: true, wantPath: "/api/orders/42"},
		{target: "/api//orders/%34%32", allowed: true, wantPath: "/api/orders/42"},
		{target: "//healthz", allowed: true, wantPath: "/healthz"},
		{target: "/api/orders/../../admin", allowed: false},
		{target: "/api/orders/%2e%2e/%2e%2e/admin", allowed: false},
		{target: "/api/orders/..%2f..%2fadmin", allowed: false},
		{target: "/api/orders/..;/admin", allowed: false},
		{target: "/healthz/..", allowed: false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.target, nil)
		d := p.DecideHTTP(web, r)
		if d.Allowed != tt.allowed || d.Path != tt.wantPath {
			t.Errorf("GET %s: %+v; want allowed=%v on path %q", tt.target, d, tt.allowed, tt.wantPath)
		}
	}
}

func TestHTTPRuleValidation(t *testing.T) {
	tests := []struct {
		rule    string
		wantErr string
	}{
		{rule: "spiffe://td/x GET api", wantErr: "must start with /"},
		{rule: "spiffe://td/x GET /api/*/x", wantErr: "* may only end the path"},
		{rule: "spiffe://td/x GET /api/../admin/*", wantErr: "dot segment"},
		{rule: "spiffe://td/x GET /api/./x", wantErr: "dot segment"},
		{rule: "spiffe://td/x GET /api/..;/x", wantErr: "dot segment"},
		{rule: "spiffe://td/x GET /api//x", wantErr: "empty segment"},
		{rule: "spiffe://td/x GET /files/caf%C3%A9/*", wantErr: "decoded"},
		{rule: "spiffe://td/x GET /a?b=1", wantErr: "decoded"},
		{rule: `spiffe://td/x GET /a\b`, wantErr: `\`},
		{rule: "spiffe://td/x GET /a\x00", wantErr: "control"},
		{rule: "spiffe://td/x GET,,HEAD /a", wantErr: `method ""`},
		{rule: "spiffe://td/x GE\x01T /a", wantErr: "not an HTTP method"},
		{rule: "spiffe://td/x GET,* /a", wantErr: `method "*"`},
		{rule: "spiffe://td/x* GET /a", wantErr: "whole segment"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			_, err := trust.ParseHTTPRule(tt.rule)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseHTTPRule(%q) = %v, want an error saying %q", tt.rule, err, tt.wantErr)
			}
		})
	}
	for _, ok := range []string{
		"spiffe://td/x GET /",
		"spiffe://td/x GET /*",
		"spiffe://td/x GET /api/v*",
		"spiffe://td/x GET /api/.*",
		"spiffe://td/x GET /.well-known/*",
		"spiffe://td/x get,PoSt /files/café/*",
		"spiffe://td/x * /a;b",
	} {
		if _, err := trust.ParseHTTPRule(ok); err != nil {
			t.Errorf("ParseHTTPRule(%q): %v", ok, err)
		}
	}
	methods := []string{"get", "head"}
	r, err := trust.NewHTTPRule("spiffe://td/x", methods, "/a")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(methods, []string{"get", "head"}) || !slices.Equal(r.Methods, []string{"GET", "HEAD"}) {
		t.Fatalf("NewHTTPRule changed the caller's methods to %q (rule has %q)", methods, r.Methods)
	}
	if r, err := trust.NewHTTPRule("spiffe://td/x", []string{"*"}, "/a"); err != nil || r.Methods != nil || !r.Match(spiffeid.RequireFromString("spiffe://td/x"), "PATCH", "/a") {
		t.Fatalf("methods [*] must mean any method: %+v, %v", r, err)
	}
}
