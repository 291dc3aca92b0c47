package registry

import (
	"errors"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/attest"
)

// Registry holds the rule set in force.
type Registry struct {
	td spiffeid.TrustDomain

	mu      sync.RWMutex
	rules   []Compiled
	changed chan struct{}
}

// New returns a Registry with the given rules.
func New(td spiffeid.TrustDomain, rules []Compiled) *Registry {
	return &Registry{td: td, rules: rules, changed: make(chan struct{})}
}

// Set replaces the rules and tells every watcher.
func (r *Registry) Set(rules []Compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules = rules
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the next Set.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changed
}

// Len is the number of rules.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.rules)
}

// Match returns the entries of every rule that applies to sel (all its
// selectors and every selector its template names were attested), without
// duplicates, in rule order. A rule whose template cannot be rendered for
// this workload is skipped and reported in errs.
func (r *Registry) Match(sel attest.Set) (entries []Entry, errs []error) {
	r.mu.RLock()
	rules := r.rules
	r.mu.RUnlock()
	seen := map[string]bool{}
	hints := map[string]bool{}
	for i := range rules {
		rule := &rules[i]
		if !sel.Contains(rule.selectors) {
			continue
		}
		e, err := rule.render(r.td, sel)
		if errors.Is(err, attest.ErrNotAttested) {
			// A placeholder is an implicit selector: {k8s:ns} does not
			// apply to a process that is not in a pod.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("registry: rule %d: %w", i+1, err))
			continue
		}
		k := e.Key()
		if seen[k] {
			continue
		}
		// The Workload API requires hints to be unique within a response;
		// a config refuses duplicates, but rules from elsewhere may still
		// collide for one workload, and the first rule wins.
		if e.Hint != "" && hints[e.Hint] {
			errs = append(errs, fmt.Errorf("registry: rule %d: hint %q is already used by an earlier rule for this workload; %s is not served", i+1, e.Hint, e.ID))
			continue
		}
		seen[k] = true
		hints[e.Hint] = e.Hint != ""
		entries = append(entries, e)
	}
	return entries, errs
}
