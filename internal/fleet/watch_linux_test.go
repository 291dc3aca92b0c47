package fleet

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// watch is one go-spiffe X.509 context watch on one agent: the workload
// whose M identities the benchmark follows.
type watch struct {
	agent *agentProc
	want  map[spiffeid.ID]bool

	mu         sync.Mutex
	last       *workloadapi.X509Context
	updates    int
	streamErrs []string
	violations []string
	target     string                    // hex SKI of the issuer being rolled out
	bundleAt   time.Time                 // first update whose bundle held target
	movedAt    map[spiffeid.ID]time.Time // first update where the ID chained to target
	issuedAt   map[spiffeid.ID]time.Time // when that SVID was signed: NotAfter − ttl (to the second)
	ttl        time.Duration
	done       chan struct{}
}

func startWatch(ctx context.Context, a *agentProc, ttl time.Duration) *watch {
	w := &watch{agent: a, want: map[spiffeid.ID]bool{}, movedAt: map[spiffeid.ID]time.Time{},
		issuedAt: map[spiffeid.ID]time.Time{}, ttl: ttl, done: make(chan struct{})}
	for _, id := range a.ids {
		w.want[id] = true
	}
	go func() {
		defer close(w.done)
		err := workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+a.socket))
		if err != nil && !errors.Is(err, context.Canceled) {
			w.mu.Lock()
			w.streamErrs = append(w.streamErrs, "watch ended: "+err.Error())
			w.mu.Unlock()
		}
	}()
	return w
}

// top is the hex authority key ID of the last certificate of an SVID's
// chain: which trust anchor it chains to (in sign mode the leaf's issuer;
// in intermediate mode the issuer of the agent's intermediate).
func top(s *x509svid.SVID) string {
	return hex.EncodeToString(s.Certificates[len(s.Certificates)-1].AuthorityKeyId)
}

// OnX509ContextUpdate records the update.
func (w *watch) OnX509ContextUpdate(c *workloadapi.X509Context) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.updates++
	w.last = c
	seen := map[spiffeid.ID]bool{}
	for _, s := range c.SVIDs {
		if !w.want[s.ID] {
			w.violations = append(w.violations, fmt.Sprintf("SVID for %s, which no rule gives", s.ID))
		}
		seen[s.ID] = true
	}
	if len(seen) != len(w.want) {
		w.violations = append(w.violations, fmt.Sprintf("update with %d of %d identities", len(seen), len(w.want)))
	}
	w.observe(now)
}

// observe notes, at now, whether the last update shows target.
func (w *watch) observe(now time.Time) {
	if w.target == "" || w.last == nil {
		return
	}
	if w.bundleAt.IsZero() {
		if b, err := w.last.Bundles.GetX509BundleForTrustDomain(trustDomain); err == nil {
			for _, a := range b.X509Authorities() {
				if hex.EncodeToString(a.SubjectKeyId) == w.target {
					w.bundleAt = now
				}
			}
		}
	}
	for _, s := range w.last.SVIDs {
		if _, ok := w.movedAt[s.ID]; !ok && top(s) == w.target {
			w.movedAt[s.ID] = now
			w.issuedAt[s.ID] = s.Certificates[0].NotAfter.Add(-w.ttl)
		}
	}
}

// OnX509ContextWatchError records a stream error; go-spiffe reconnects.
func (w *watch) OnX509ContextWatchError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.streamErrs = append(w.streamErrs, err.Error())
}

// served reports whether the watch holds all its identities.
func (w *watch) served() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last != nil && len(w.last.SVIDs) == len(w.want)
}

// follow starts timing the rollout of the issuer with SKI ski.
func (w *watch) follow(ski []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = hex.EncodeToString(ski)
	w.bundleAt, w.movedAt, w.issuedAt = time.Time{}, map[spiffeid.ID]time.Time{}, map[spiffeid.ID]time.Time{}
	w.observe(time.Now())
}

func (w *watch) hasBundle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.bundleAt.IsZero()
}

func (w *watch) allMoved() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.movedAt) == len(w.want)
}

// verifyAgainst checks that every SVID the watch holds verifies against
// issuer alone, and returns what does not.
func (w *watch) verifyAgainst(issuer *x509.Certificate) []string {
	w.mu.Lock()
	c := w.last
	w.mu.Unlock()
	only := x509bundle.FromX509Authorities(trustDomain, []*x509.Certificate{issuer})
	var bad []string
	for _, s := range c.SVIDs {
		if _, _, err := x509svid.Verify(s.Certificates, only); err != nil {
			bad = append(bad, fmt.Sprintf("agent %d: %s does not chain to the new issuer: %v", w.agent.idx, s.ID, err))
		}
	}
	return bad
}

// intermediates returns the distinct intermediates the watch's SVIDs carry
// (intermediate mode), for the name-constraint check.
func (w *watch) intermediates() []*x509.Certificate {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]*x509.Certificate{}
	for _, s := range w.last.SVIDs {
		for _, c := range s.Certificates[1:] {
			seen[string(c.Raw)] = c
		}
	}
	out := make([]*x509.Certificate, 0, len(seen))
	for _, c := range seen {
		out = append(out, c)
	}
	return out
}

// waitAll waits up to bound for every watch to satisfy ok, and fails
// naming how many did not; it returns how long it took.
func waitAll(t *testing.T, ws []*watch, bound time.Duration, what string, ok func(*watch) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		var lagging []int
		for _, w := range ws {
			if !ok(w) {
				lagging = append(lagging, w.agent.idx)
			}
		}
		if len(lagging) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("after %v, %d of %d agents' watches had not %s; agents %v%s", bound, len(lagging), len(ws), what,
				lagging[:min(10, len(lagging))], ws[lagging[0]].agent.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
