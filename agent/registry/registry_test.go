package registry_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/registry"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func TestCompileRefusesBadRules(t *testing.T) {
	tests := []struct {
		name      string
		rule      registry.Rule
		wantField string
		wantErr   string
	}{
		{name: "missing id", rule: registry.Rule{}, wantField: "spiffe_id", wantErr: "is required"},
		{name: "not a SPIFFE ID", rule: registry.Rule{SPIFFEID: "https://example.org/x"}, wantField: "spiffe_id", wantErr: "not a valid SPIFFE ID"},
		{name: "other trust domain", rule: registry.Rule{SPIFFEID: "spiffe://other.org/x"}, wantField: "spiffe_id", wantErr: "not in trust domain"},
		{name: "placeholder in trust domain", rule: registry.Rule{SPIFFEID: "spiffe://{unix:user}.org/x"}, wantField: "spiffe_id", wantErr: "before any placeholder"},
		{name: "unknown placeholder", rule: registry.Rule{SPIFFEID: "spiffe://example.org/{unix:shell}"}, wantField: "spiffe_id", wantErr: `unknown unix selector "shell"`},
		{name: "unclosed placeholder", rule: registry.Rule{SPIFFEID: "spiffe://example.org/{unix:uid"}, wantField: "spiffe_id", wantErr: "without '}'"},
		{name: "stray brace", rule: registry.Rule{SPIFFEID: "spiffe://example.org/a}"}, wantField: "spiffe_id", wantErr: "without '{'"},
		{name: "dot segment", rule: registry.Rule{SPIFFEID: "spiffe://example.org/../x"}, wantField: "spiffe_id", wantErr: "not a valid SPIFFE ID"},
		{name: "bad selector", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"unix:uid:1", "uid"}}, wantField: "selectors[1]", wantErr: "type:value"},
		{name: "unknown selector type", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"docker:label:x"}}, wantField: "selectors[0]", wantErr: "unknown selector type"},
		{name: "ttl too short", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", TTL: time.Second}, wantField: "ttl", wantErr: "out of range"},
		{name: "bad dns name", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", DNSNames: []string{"ok.local", "no_underscore"}}, wantField: "dns_names[1]", wantErr: "character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.Compile(td, time.Hour, tt.rule)
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if !strings.HasPrefix(err.Error(), tt.wantField+":") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %q, want field %s and %q", err, tt.wantField, tt.wantErr)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	compile := func(r registry.Rule) registry.Compiled {
		t.Helper()
		c, err := registry.Compile(td, time.Hour, r)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reg := registry.New(td, []registry.Compiled{
		compile(registry.Rule{SPIFFEID: "spiffe://example.org/uid/{unix:uid}"}),
		compile(registry.Rule{SPIFFEID: "spiffe://example.org/web", Selectors: []string{"unix:uid:1000", "unix:user:web"}, TTL: 10 * time.Minute, DNSNames: []string{"web.local"}, Hint: "web"}),
		compile(registry.Rule{SPIFFEID: "spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}"}),
		compile(registry.Rule{SPIFFEID: "spiffe://example.org/group/{unix:supplementary_gid}", Selectors: []string{"unix:uid:7"}}),
		compile(registry.Rule{SPIFFEID: "spiffe://example.org/uid/{unix:uid}"}), // a duplicate
	})
	set := func(s ...string) attest.Set {
		var out []attest.Selector
		for _, x := range s {
			sel, err := attest.ParseSelector(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sel)
		}
		return attest.NewSet(out...)
	}
	tests := []struct {
		name     string
		sel      attest.Set
		wantIDs  []string
		wantErrs int
	}{
		{name: "template only", sel: set("unix:uid:501", "unix:user:alice"), wantIDs: []string{"spiffe://example.org/uid/501"}},
		{name: "all selectors of a rule", sel: set("unix:uid:1000", "unix:user:web", "unix:gid:1"), wantIDs: []string{"spiffe://example.org/uid/1000", "spiffe://example.org/web"}},
		{name: "missing one selector", sel: set("unix:uid:1000", "unix:user:other"), wantIDs: []string{"spiffe://example.org/uid/1000"}},
		{name: "k8s template", sel: set("k8s:ns:prod", "k8s:sa:api"), wantIDs: []string{"spiffe://example.org/ns/prod/sa/api"}},
		{name: "ambiguous placeholder is an error for that rule only", sel: set("unix:uid:7", "unix:supplementary_gid:1", "unix:supplementary_gid:2"), wantIDs: []string{"spiffe://example.org/uid/7"}, wantErrs: 1},
		// Rules 1 and 5 both fail to render.
		{name: "value that breaks the ID", sel: set("unix:uid:a b"), wantErrs: 2},
		{name: "nothing", sel: set("k8s:ns:prod")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, errs := reg.Match(tt.sel)
			var ids []string
			for _, e := range entries {
				ids = append(ids, e.ID.String())
			}
			if strings.Join(ids, " ") != strings.Join(tt.wantIDs, " ") || len(errs) != tt.wantErrs {
				t.Fatalf("Match = %v (errors %v), want %v with %d errors", ids, errs, tt.wantIDs, tt.wantErrs)
			}
		})
	}
	entries, _ := reg.Match(set("unix:uid:1000", "unix:user:web"))
	if web := entries[1]; web.TTL != 10*time.Minute || web.DNSNames[0] != "web.local" || web.Hint != "web" {
		t.Fatalf("rule fields not carried into the entry: %+v", web)
	}
	if entries[0].TTL != time.Hour {
		t.Fatalf("default TTL not applied: %v", entries[0].TTL)
	}
}

func TestSetNotifies(t *testing.T) {
	reg := registry.New(td, nil)
	ch := reg.Changed()
	reg.Set(nil)
	select {
	case <-ch:
	default:
		t.Fatal("Set did not close the Changed channel")
	}
}
