package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// writeJWTSVID fetches a JWT-SVID for t and writes it; it returns its expiry.
func (w *svidWriter) writeJWTSVID(ctx context.Context, t jwtTarget) (time.Time, error) {
	svids, err := workloadapi.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: t.audience, ExtraAudiences: t.extra}, w.client)
	if err != nil {
		return time.Time{}, fmt.Errorf("svid write: JWT-SVID for %q: %w", t.audience, err)
	}
	svid := svids[0]
	if w.plan.hint != "" {
		svid = nil
		for _, s := range svids {
			if s.Hint == w.plan.hint {
				svid = s
			}
		}
		if svid == nil {
			return time.Time{}, fmt.Errorf("svid write: no JWT-SVID with hint %q", w.plan.hint)
		}
	}
	if err := writeFile(w.plan.dir, t.file, []byte(svid.Marshal()), w.plan.jwtSVIDMode); err != nil {
		return time.Time{}, err
	}
	w.status.jwtSVIDWritten(t.file, svid.Expiry)
	fmt.Fprintf(w.out, "wrote JWT-SVID for %q (valid until %s) to %s\n", t.audience, svid.Expiry.Format(time.RFC3339), t.file)
	return svid.Expiry, nil
}

// jwtRefreshDelay is how long to wait before fetching a JWT-SVID again:
// half its remaining life (as spiffe-helper does), at least a second.
func jwtRefreshDelay(expiry, now time.Time) time.Duration {
	return max(expiry.Sub(now)/2, time.Second)
}

// keepJWTSVID keeps t's file fresh until ctx ends: it refetches at half the
// token's remaining life, and after a failure retries with backoff (1s
// doubling to 1m). Waits go through w.after, so tests drive the clock.
func (w *svidWriter) keepJWTSVID(ctx context.Context, t jwtTarget) error {
	backoff := time.Second
	for {
		var wait time.Duration
		expiry, err := w.writeJWTSVID(ctx, t)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintln(w.out, "error (retrying):", err)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		default:
			wait, backoff = jwtRefreshDelay(expiry, w.now()), time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.after(wait):
		}
	}
}

func (w *svidWriter) writeJWTBundle(set *jwtbundle.Set) error {
	data, err := jwtBundleJSON(set)
	if err != nil {
		return err
	}
	if err := writeFile(w.plan.dir, w.plan.jwtBundleName, data, w.plan.jwtBundleMode); err != nil {
		return err
	}
	w.status.jwtBundleWritten()
	fmt.Fprintf(w.out, "wrote JWT bundle to %s\n", w.plan.jwtBundleName)
	return nil
}

// jwtBundleWatcher rewrites the JWT bundle file on every change.
type jwtBundleWatcher struct{ w *svidWriter }

func (b jwtBundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	if err := b.w.writeJWTBundle(set); err != nil {
		fmt.Fprintln(b.w.out, "error writing the JWT bundle:", err)
	}
}

func (b jwtBundleWatcher) OnJWTBundlesWatchError(err error) {
	if !streamCancelled(err) {
		fmt.Fprintln(b.w.out, "JWT bundle watch error (retrying):", err)
	}
}
