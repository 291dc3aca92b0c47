package oidc

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/bundle"
)

// Watched is a Source fed by the Workload API's JWT bundle stream, for
// `sworn oidc` running beside an agent as SPIRE's oidc-discovery-provider
// runs beside SPIRE's: it holds the last bundles the agent sent, so an
// agent restart or a broken stream leaves the documents served as they
// were until the agent sends new ones.
type Watched struct {
	log *slog.Logger

	mu   sync.Mutex
	snap bundle.Snapshot
}

// NewWatched returns a source that holds nothing until Watch hears from
// the agent; the Handler answers 503 until then.
func NewWatched(log *slog.Logger) *Watched {
	return &Watched{log: log}
}

// Watch follows the Workload API at addr until ctx ends. go-spiffe retries
// a failed stream with backoff; each failure is logged.
func (w *Watched) Watch(ctx context.Context, addr string) error {
	err := workloadapi.WatchJWTBundles(ctx, w, workloadapi.WithAddr(addr))
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

// Snapshot returns the bundles last received.
func (w *Watched) Snapshot() bundle.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// OnJWTBundlesUpdate takes the agent's bundles; the sequence number moves
// only when they changed, so the Handler's ETags hold across a reconnect.
func (w *Watched) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	next := make(map[spiffeid.TrustDomain]*jwtbundle.Bundle, set.Len())
	for _, b := range set.Bundles() {
		next[b.TrustDomain()] = b
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.snap.JWT != nil && maps.EqualFunc(w.snap.JWT, next, (*jwtbundle.Bundle).Equal) {
		return
	}
	w.snap = bundle.Snapshot{Seq: w.snap.Seq + 1, JWT: next}
	w.log.Info("JWT bundles received from the agent", "trust_domains", len(next))
}

// OnJWTBundlesWatchError logs a failed stream; the documents last served
// stay.
func (w *Watched) OnJWTBundlesWatchError(err error) {
	w.log.Warn("Workload API stream failed; serving the last bundles received (is the agent running, and does a rule match this process?)", "error", err)
}
