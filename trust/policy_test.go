package trust_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/trust"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		id      string
		want    bool
	}{
		{pattern: "spiffe://prod.example", id: "spiffe://prod.example/anything/at/all", want: true},
		{pattern: "spiffe://prod.example", id: "spiffe://other.example/x", want: false},
		{pattern: "spiffe://prod.example/ns/web/sa/api", id: "spiffe://prod.example/ns/web/sa/api", want: true},
		{pattern: "spiffe://prod.example/ns/web/sa/api", id: "spiffe://prod.example/ns/web/sa/api/x", want: false},
		{pattern: "spiffe://prod.example/ns/web/sa/api", id: "spiffe://prod.example/ns/web/sa/ap", want: false},
		{pattern: "spiffe://prod.example/ns/payments/sa/*", id: "spiffe://prod.example/ns/payments/sa/api", want: true},
		{pattern: "spiffe://prod.example/ns/payments/sa/*", id: "spiffe://prod.example/ns/payments/sa", want: false},
		{pattern: "spiffe://prod.example/ns/payments/sa/*", id: "spiffe://prod.example/ns/payments/sa/api/extra", want: false},
		{pattern: "spiffe://prod.example/ns/*/sa/api", id: "spiffe://prod.example/ns/any/sa/api", want: true},
		{pattern: "spiffe://prod.example/ns/payments/**", id: "spiffe://prod.example/ns/payments/sa/api", want: true},
		{pattern: "spiffe://prod.example/ns/payments/**", id: "spiffe://prod.example/ns/payments/a/b/c/d", want: true},
		{pattern: "spiffe://prod.example/ns/payments/**", id: "spiffe://prod.example/ns/payments", want: false},
		{pattern: "spiffe://prod.example/ns/payments/**", id: "spiffe://prod.example/ns/paymentsx/sa/api", want: false},
		{pattern: "spiffe://prod.example/**", id: "spiffe://prod.example/a", want: true},
		{pattern: "spiffe://prod.example/**", id: "spiffe://other.example/a", want: false},
		{pattern: "spiffe://prod.example/*", id: "spiffe://prod.example/a/b", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.id, func(t *testing.T) {
			p, err := trust.ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(spiffeid.RequireFromString(tt.id)); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPatternValidation(t *testing.T) {
	tests := []struct {
		pattern string
		wantErr string
	}{
		{pattern: "https://prod.example/x", wantErr: "must start with spiffe://"},
		{pattern: "spiffe://Prod.Example/x", wantErr: "trust domain characters"},
		{pattern: "spiffe://prod.example/ns/", wantErr: "empty segments"},
		{pattern: "spiffe://prod.example/a%2Fb", wantErr: "path segment characters"},
		{pattern: "spiffe://prod.example/a//b", wantErr: "empty segments"},
		{pattern: "spiffe://prod.example/**/x", wantErr: "** may only be the last segment"},
		{pattern: "spiffe://prod.example/sa-*", wantErr: "whole segment"},
		{pattern: "spiffe://prod.example/../x", wantErr: "dot segment"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := trust.ParsePattern(tt.pattern)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.pattern) {
				t.Fatalf("err = %v, want one naming the pattern and containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPolicyDecide(t *testing.T) {
	p, err := trust.ParsePolicy([]byte(`
allow:
  - spiffe://prod.example/ns/payments/**
  - spiffe://prod.example/ns/web/sa/frontend
deny:
  - spiffe://prod.example/ns/payments/sa/legacy
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id       string
		allowed  bool
		wantRule string
	}{
		{id: "spiffe://prod.example/ns/payments/sa/api", allowed: true, wantRule: "allow spiffe://prod.example/ns/payments/**"},
		{id: "spiffe://prod.example/ns/payments/sa/legacy", allowed: false, wantRule: "deny spiffe://prod.example/ns/payments/sa/legacy"},
		{id: "spiffe://prod.example/ns/web/sa/frontend", allowed: true, wantRule: "allow spiffe://prod.example/ns/web/sa/frontend"},
		{id: "spiffe://prod.example/ns/web/sa/other", allowed: false, wantRule: "no allow entry matches"},
		{id: "spiffe://other.example/ns/payments/sa/api", allowed: false, wantRule: "no allow entry matches"},
	}
	for _, tt := range tests {
		d := p.Decide(spiffeid.RequireFromString(tt.id))
		if d.Allowed != tt.allowed || d.Rule != tt.wantRule {
			t.Errorf("%s: %+v, want allowed=%v by %q", tt.id, d, tt.allowed, tt.wantRule)
		}
	}
	empty, _ := trust.NewPolicy(nil, nil)
	if d := empty.Decide(spiffeid.RequireFromString("spiffe://prod.example/x")); d.Allowed {
		t.Fatal("an empty policy admitted a peer")
	}
	if _, err := trust.ParsePolicy([]byte("allow: [spiffe://prod.example/x]\nalow: []\n")); err == nil {
		t.Fatal("an unknown key was accepted")
	}
	if _, err := trust.ParsePolicy([]byte("allow: [spiffe://prod.example/x*]\n")); err == nil || !strings.Contains(err.Error(), "x*") {
		t.Fatalf("a bad pattern: %v", err)
	}
}

func TestPolicyDecideHTTP(t *testing.T) {
	p, err := trust.ParsePolicy([]byte(`
deny: [spiffe://td/ns/web/sa/banned]
http:
  - id: spiffe://td/ns/web/sa/frontend
    methods: [get, head]
    path: /api/orders/*
  - id: spiffe://td/ns/ops/**
    path: /healthz
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, method, path string
		allowed          bool
	}{
		{id: "spiffe://td/ns/web/sa/frontend", method: "GET", path: "/api/orders/42", allowed: true},
		{id: "spiffe://td/ns/web/sa/frontend", method: "POST", path: "/api/orders/42", allowed: false},
		{id: "spiffe://td/ns/web/sa/frontend", method: "GET", path: "/api/users/1", allowed: false},
		{id: "spiffe://td/ns/ops/sa/prober", method: "DELETE", path: "/healthz", allowed: true},
		{id: "spiffe://td/ns/ops/sa/prober", method: "GET", path: "/healthz/x", allowed: false},
		{id: "spiffe://td/ns/web/sa/banned", method: "GET", path: "/healthz", allowed: false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if d := p.DecideHTTP(spiffeid.RequireFromString(tt.id), r); d.Allowed != tt.allowed {
			t.Errorf("%s %s %s: %+v, want allowed=%v", tt.id, tt.method, tt.path, d, tt.allowed)
		}
	}
	conns := p.ForConnections()
	if !conns.Decide(spiffeid.RequireFromString("spiffe://td/ns/ops/sa/x")).Allowed || conns.Decide(spiffeid.RequireFromString("spiffe://td/ns/web/sa/banned")).Allowed {
		t.Fatal("ForConnections must admit HTTP rule peers and still deny denied ones")
	}
	if _, err := trust.ParseHTTPRule("spiffe://td/x GET api"); err == nil {
		t.Fatal("a relative path was accepted")
	}
	if r, err := trust.ParseHTTPRule("spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*"); err != nil || r.String() != "spiffe://td/ns/web/sa/frontend GET,HEAD /api/orders/*" {
		t.Fatalf("ParseHTTPRule = %v, %v", r, err)
	}
}
