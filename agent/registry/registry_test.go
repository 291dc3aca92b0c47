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
		{name: "ttl too short", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"any"}, TTL: time.Second}, wantField: "ttl", wantErr: "out of range"},
		{name: "trust domain ID without path", rule: registry.Rule{SPIFFEID: "spiffe://example.org", Selectors: []string{"unix:uid:0"}}, wantField: "spiffe_id", wantErr: "names the trust domain, not a workload"},
		{name: "trust domain ID with a slash", rule: registry.Rule{SPIFFEID: "spiffe://example.org/", Selectors: []string{"unix:uid:0"}}, wantField: "spiffe_id", wantErr: "not a valid SPIFFE ID"},
		{name: "no selectors and no placeholder", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x"}, wantField: "selectors", wantErr: "selectors: [any]"},
		{name: "empty selector list", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{}}, wantField: "selectors", wantErr: "to every process"},
		{name: "any with other selectors", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"unix:uid:1", "any"}}, wantField: "selectors[1]", wantErr: "cannot be combined"},
		{name: "empty selector value", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"unix:uid:"}}, wantField: "selectors[0]", wantErr: "no value after unix:uid:"},
		{name: "selector without value", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"unix:uid"}}, wantField: "selectors[0]", wantErr: "no value after unix:uid:"},
		{name: "label without key", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"k8s:pod-label::web"}}, wantField: "selectors[0]", wantErr: "k8s:pod-label:<key>:<value>"},
		{name: "label without value separator", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"k8s:pod-label:app"}}, wantField: "selectors[0]", wantErr: "k8s:pod-label:<key>:<value>"},
		{name: "bad dns name", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"any"}, DNSNames: []string{"ok.local", "no_underscore"}}, wantField: "dns_names[1]", wantErr: "character"},
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

func TestCompileAcceptsExplicitRules(t *testing.T) {
	tests := []struct {
		name string
		rule registry.Rule
	}{
		{name: "any", rule: registry.Rule{SPIFFEID: "spiffe://example.org/everyone", Selectors: []string{"any"}}},
		{name: "placeholder is an implicit selector", rule: registry.Rule{SPIFFEID: "spiffe://example.org/uid/{unix:uid}"}},
		{name: "label with an empty value", rule: registry.Rule{SPIFFEID: "spiffe://example.org/x", Selectors: []string{"k8s:pod-label:canary:"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := registry.Compile(td, time.Hour, tt.rule); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMatchAny(t *testing.T) {
	everyone, err := registry.Compile(td, time.Hour, registry.Rule{SPIFFEID: "spiffe://example.org/everyone", Selectors: []string{"any"}})
	if err != nil {
		t.Fatal(err)
	}
	entries, errs := registry.New(td, []registry.Compiled{everyone}).Match(attest.NewSet(attest.Selector{Type: "unix", Value: "uid:42"}))
	if len(errs) != 0 || len(entries) != 1 || entries[0].ID.String() != "spiffe://example.org/everyone" {
		t.Fatalf("Match = %v, %v; want spiffe://example.org/everyone", entries, errs)
	}
}

// Two rules may give one workload two identities with the same hint (a
// config refuses that, but the registry is the last line): only the first
// is served, and the second is reported.
func TestMatchDropsDuplicateHints(t *testing.T) {
	var rules []registry.Compiled
	for _, r := range []registry.Rule{
		{SPIFFEID: "spiffe://example.org/a", Selectors: []string{"unix:uid:1"}, Hint: "internal"},
		{SPIFFEID: "spiffe://example.org/b", Selectors: []string{"unix:uid:1"}, Hint: "internal"},
		{SPIFFEID: "spiffe://example.org/c", Selectors: []string{"unix:uid:1"}, Hint: "external"},
		{SPIFFEID: "spiffe://example.org/d", Selectors: []string{"unix:uid:1"}},
		{SPIFFEID: "spiffe://example.org/e", Selectors: []string{"unix:uid:1"}},
	} {
		c, err := registry.Compile(td, time.Hour, r)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, c)
	}
	entries, errs := registry.New(td, rules).Match(attest.NewSet(attest.Selector{Type: "unix", Value: "uid:1"}))
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ID.String())
	}
	want := "spiffe://example.org/a spiffe://example.org/c spiffe://example.org/d spiffe://example.org/e"
	if strings.Join(ids, " ") != want {
		t.Fatalf("Match = %v, want %s (empty hints are not duplicates)", ids, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `hint "internal"`) || !strings.Contains(errs[0].Error(), "example.org/b") {
		t.Fatalf("errs = %v, want one naming the hint and the dropped ID", errs)
	}
}

// Rules that differ only in federates_with or hint give one workload the
// same SVID: it is served once, with the union of their federations, the
// first rule's hint, and a report for a hint that cannot be served.
func TestMatchMergesRulesForTheSameSVID(t *testing.T) {
	compile := func(r registry.Rule) registry.Compiled {
		t.Helper()
		r.SPIFFEID, r.Selectors = "spiffe://example.org/web", []string{"unix:uid:1"}
		c, err := registry.Compile(td, time.Hour, r)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reg := registry.New(td, []registry.Compiled{
		compile(registry.Rule{FederatesWith: []string{"a.org"}, Hint: "web"}),
		compile(registry.Rule{FederatesWith: []string{"b.org", "a.org"}}),
		compile(registry.Rule{Hint: "other"}),
	})
	uid1 := attest.NewSet(attest.Selector{Type: "unix", Value: "uid:1"})
	for range 2 { // twice: merging must not change the compiled rules
		entries, errs := reg.Match(uid1)
		if len(entries) != 1 {
			t.Fatalf("Match = %v, want one entry", entries)
		}
		var fed []string
		for _, f := range entries[0].FederatesWith {
			fed = append(fed, f.Name())
		}
		if got := strings.Join(fed, " "); got != "a.org b.org" || entries[0].Hint != "web" {
			t.Fatalf("entry federates with %q and has hint %q, want \"a.org b.org\" and \"web\"", got, entries[0].Hint)
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), `rule 3`) || !strings.Contains(errs[0].Error(), `hint "other" is not served`) {
			t.Fatalf("errs = %v, want one for rule 3's hint", errs)
		}
	}
}

// MayUse tells the unix attestor whether a digest rule could apply to a
// caller with the unix selectors known so far, so that it hashes the
// executable only for callers some such rule could identify; it follows
// Set, and selectors of other types (not attested yet) never rule a rule
// out.
func TestMayUseFollowsTheRules(t *testing.T) {
	digest := "unix:sha256:" + strings.Repeat("ab", 32)
	compile := func(rules ...registry.Rule) []registry.Compiled {
		t.Helper()
		var out []registry.Compiled
		for _, r := range rules {
			c, err := registry.Compile(td, time.Hour, r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	uid := func(n string) attest.Set {
		return attest.NewSet(attest.Selector{Type: "unix", Value: "uid:" + n}, attest.Selector{Type: "unix", Value: "gid:0"})
	}
	reg := registry.New(td, compile(registry.Rule{SPIFFEID: "spiffe://example.org/web", Selectors: []string{"unix:uid:1000", "k8s:pod-label:app:web"}}))
	if reg.MayUse("unix", "sha256", uid("1000")) {
		t.Fatal("no rule uses the digest, yet MayUse says one could")
	}
	reg.Set(compile(registry.Rule{SPIFFEID: "spiffe://example.org/db", Selectors: []string{"unix:uid:2000", digest, "k8s:ns:prod"}}))
	for _, tc := range []struct {
		name  string
		known attest.Set
		want  bool
	}{
		{name: "the rule's uid (k8s:ns not known yet)", known: uid("2000"), want: true},
		{name: "another uid", known: uid("1000"), want: false},
		{name: "nothing known", known: nil, want: false},
	} {
		if got := reg.MayUse("unix", "sha256", tc.known); got != tc.want {
			t.Errorf("%s: MayUse = %v, want %v", tc.name, got, tc.want)
		}
	}
	reg.Set(compile(registry.Rule{SPIFFEID: "spiffe://example.org/bin/{unix:sha256}"}))
	if !reg.MayUse("unix", "sha256", uid("1000")) {
		t.Fatal("a template placeholder {unix:sha256} applies to every caller, yet MayUse says it cannot")
	}
}

// TestClusterRulesAndConfigRulesAreSetApart: a config reload keeps the
// rules the cluster's objects made and the cluster's updates keep the
// config's, each Set tells watchers, and config rules come first.
func TestClusterRulesAndConfigRulesAreSetApart(t *testing.T) {
	compile := func(id, sel string) registry.Compiled {
		t.Helper()
		c, err := registry.Compile(td, time.Hour, registry.Rule{SPIFFEID: id, Selectors: []string{sel}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sel := attest.NewSet(attest.Selector{Type: "unix", Value: "uid:0"}, attest.Selector{Type: "k8s", Value: "pod-uid:p1"})
	ids := func(r *registry.Registry) string {
		entries, errs := r.Match(sel)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.ID.Path())
		}
		return strings.Join(out, " ")
	}
	r := registry.New(td, []registry.Compiled{compile("spiffe://example.org/config", "unix:uid:0")})
	changed := r.Changed()
	r.SetCluster([]registry.Compiled{compile("spiffe://example.org/cluster", "k8s:pod-uid:p1")})
	<-changed
	if got := ids(r); got != "/config /cluster" {
		t.Fatalf("after SetCluster: %q, want the config's rule then the cluster's", got)
	}
	changed = r.Changed()
	r.Set([]registry.Compiled{compile("spiffe://example.org/config2", "unix:uid:0")})
	<-changed
	if got := ids(r); got != "/config2 /cluster" {
		t.Fatalf("after a config reload: %q, want the cluster's rule kept", got)
	}
	// The same rules again tell no one: nothing changed.
	changed = r.Changed()
	r.SetCluster([]registry.Compiled{compile("spiffe://example.org/cluster", "k8s:pod-uid:p1")})
	select {
	case <-changed:
		t.Fatal("setting the same cluster rules told every watcher")
	default:
	}
	r.SetCluster(nil)
	<-changed
	if got := ids(r); got != "/config2" {
		t.Fatalf("after the cluster's rules went: %q, want the config's kept", got)
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the config's rules)", r.Len())
	}
}
