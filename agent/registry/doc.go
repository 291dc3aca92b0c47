// Package registry maps attested selectors to the identities a workload is
// entitled to.
//
// A rule applies to a workload when every one of its selectors was attested
// for it; a workload gets every rule that applies. A rule's spiffe_id may be
// a template whose placeholders name selectors, written like selectors in
// braces: spiffe://example.org/uid/{unix:uid} or
// spiffe://example.org/ns/{k8s:ns}/sa/{k8s:sa}. Placeholders may appear in
// the path only, never in the trust domain, and a template is checked when
// rules are loaded. A placeholder is also an implicit selector: a rule
// naming {k8s:ns} does not apply to a process outside a pod. Every rendered
// ID is parsed with go-spiffe's spiffeid and must be in the agent's trust
// domain; a rendering that fails is an error for that rule and that
// workload, never for the others.
//
// Rules that give one workload the same SVID (same ID, TTL and DNS names)
// are served as one entry federating with every trust domain any of them
// names; the first rule's hint is kept and a conflicting one reported.
//
// Registry is safe for concurrent use and swaps its rule set atomically, so
// a reload is seen whole or not at all; Changed tells streams to re-match.
package registry
