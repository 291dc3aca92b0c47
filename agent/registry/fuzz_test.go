package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/registry"
)

// FuzzCompileAndRender feeds an operator's spiffe_id template and selector,
// then renders it with an attested value a workload may influence (a user
// name, a pod label). Whatever is accepted must only ever yield IDs in the
// trust domain with a path: never the trust domain's own ID, never another
// trust domain's, never an ID that is not one.
func FuzzCompileAndRender(f *testing.F) {
	for _, s := range []struct{ id, sel, value string }{
		{"spiffe://example.org/uid/{unix:uid}", "unix:user:web", "uid:1000"},
		{"spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}", "k8s:ns:prod", "sa:api"},
		{"spiffe://example.org/team/{k8s:pod-label:team}", "any", "pod-label:team:a/../b"},
		{"spiffe://example.org", "unix:uid:0", "uid:0"},
		{"spiffe://example.org/{unix:user}", "any", "user:"},
		{"spiffe://other.org/{unix:uid}", "any", "uid:1"},
		{"spiffe://example.org/a{unix:uid}{unix:gid}", "any", "gid:x/y"},
	} {
		f.Add(s.id, s.sel, s.value)
	}
	f.Fuzz(func(t *testing.T, id, sel, value string) {
		var selectors []string
		if sel != "" {
			selectors = []string{sel}
		}
		c, err := registry.Compile(td, time.Hour, registry.Rule{SPIFFEID: id, Selectors: selectors})
		if err != nil {
			return
		}
		// The workload has the rule's selector, the value under test for
		// every name the template might ask for, and nothing else.
		attested := []attest.Selector{{Type: "unix", Value: value}, {Type: "k8s", Value: value}}
		if s, err := attest.ParseSelector(sel); err == nil {
			attested = append(attested, s)
		}
		entries, _ := registry.New(td, []registry.Compiled{c}).Match(attest.NewSet(attested...))
		for _, e := range entries {
			if e.ID.TrustDomain() != td {
				t.Fatalf("rule %q rendered %s outside %s", id, e.ID, td)
			}
			if e.ID.Path() == "" || strings.Contains(e.ID.Path(), "//") {
				t.Fatalf("rule %q rendered %s, which names no workload", id, e.ID)
			}
		}
	})
}
