package registry

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/internal/notify"
)

// Registry holds the rule set in force.
type Registry struct {
	td spiffeid.TrustDomain

	mu      sync.RWMutex
	config  []Compiled      // from the config file, see Set
	cluster []Compiled      // from the cluster's objects, see SetCluster
	rules   []Compiled      // config then cluster: what Match reads
	kinds   map[string]bool // of every rule, see MayUse
	changed notify.Notifier // Notify under mu, after the state changes
}

// New returns a Registry with the given rules.
func New(td spiffeid.TrustDomain, rules []Compiled) *Registry {
	return &Registry{td: td, config: rules, rules: rules, kinds: kindsOf(rules)}
}

// Set replaces the rules of the config file and tells every watcher.
func (r *Registry) Set(rules []Compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config = rules
	r.swapLocked()
}

// SetCluster replaces the rules made from the cluster's ClusterSPIFFEID
// objects and tells every watcher, unless they are the rules already in
// force: they are recomputed on every change to a pod of the node, and
// each change told makes every stream of the node attest its caller again
// and send its SVIDs. They come after the config's rules, so a config
// rule's hint wins over an object's for the same workload.
func (r *Registry) SetCluster(rules []Compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reflect.DeepEqual(r.cluster, rules) || len(r.cluster) == 0 && len(rules) == 0 {
		return
	}
	r.cluster = rules
	r.swapLocked()
}

func (r *Registry) swapLocked() {
	r.rules = append(slices.Clip(r.config), r.cluster...)
	r.kinds = kindsOf(r.rules)
	r.changed.Notify()
}

func kindsOf(rules []Compiled) map[string]bool {
	out := map[string]bool{}
	for i := range rules {
		for _, k := range rules[i].kinds() {
			out[k] = true
		}
	}
	return out
}

// Changed returns a channel closed at the next Set.
func (r *Registry) Changed() <-chan struct{} {
	return r.changed.Changed()
}

// MayUse reports whether a rule that matches on, or renders its ID from, a
// selector of type typ named name could apply to a caller of which the
// selectors of type typ so far are known (the others are not attested
// yet, so any rule may still match on them). The unix attestor asks it
// before hashing an executable: only a caller some digest rule could
// apply to waits for the digest.
func (r *Registry) MayUse(typ, name string, known attest.Set) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.kinds[typ+":"+name] {
		return false
	}
	for i := range r.rules {
		rule := &r.rules[i]
		if !slices.Contains(rule.kinds(), typ+":"+name) {
			continue
		}
		if known.Contains(rule.selectorsOf(typ, name)) {
			return true
		}
	}
	return false
}

// Len is the number of rules from the config file.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.config)
}

// Match returns the entries of every rule that applies to sel (all its
// selectors and every selector its template names were attested), without
// duplicates, in rule order. A rule whose template cannot be rendered for
// this workload is skipped and reported in errs.
//
// Rules that give the workload the same SVID (same ID, TTL and DNS names,
// see Entry.Key) share one entry: its federates_with is the union of
// theirs, since every one of those rules applies to the workload. The
// entry keeps the first rule's hint; a later rule naming another hint is
// reported in errs, as one SVID cannot carry two hints.
func (r *Registry) Match(sel attest.Set) (entries []Entry, errs []error) {
	r.mu.RLock()
	rules := r.rules
	r.mu.RUnlock()
	seen := map[string]int{} // entry key → index in entries
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
		if j, ok := seen[k]; ok {
			if err := merge(&entries[j], e); err != nil {
				errs = append(errs, fmt.Errorf("registry: rule %d: %w", i+1, err))
			}
			continue
		}
		// The Workload API requires hints to be unique within a response;
		// a config refuses duplicates, but rules from elsewhere may still
		// collide for one workload, and the first rule wins.
		if e.Hint != "" && hints[e.Hint] {
			errs = append(errs, fmt.Errorf("registry: rule %d: hint %q is already used by an earlier rule for this workload; %s is not served", i+1, e.Hint, e.ID))
			continue
		}
		seen[k] = len(entries)
		hints[e.Hint] = e.Hint != ""
		entries = append(entries, e)
	}
	return entries, errs
}

// merge folds e, a later rule's entry for the same SVID, into dst.
func merge(dst *Entry, e Entry) error {
	for _, td := range e.FederatesWith {
		if !slices.Contains(dst.FederatesWith, td) {
			// A new slice: dst's may be the compiled rule's own.
			dst.FederatesWith = append(slices.Clip(dst.FederatesWith), td)
		}
	}
	if e.Hint != "" && e.Hint != dst.Hint {
		return fmt.Errorf("same SVID as an earlier rule, which gives it hint %q; hint %q is not served for %s", dst.Hint, e.Hint, e.ID)
	}
	return nil
}
