package trust

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Bundle endpoint profiles.
const (
	ProfileHTTPSSPIFFE = "https_spiffe"
	ProfileHTTPSWeb    = "https_web"
)

// Bundle returns td's bundle from the snapshot in SPIFFE format (X.509 and
// JWT authorities), with the snapshot's sequence number, which grows with
// every change, and refreshHint.
func (s Snapshot) SPIFFEBundle(td spiffeid.TrustDomain, refreshHint time.Duration) (*spiffebundle.Bundle, bool) {
	x, hasX := s.Bundles[td]
	j, hasJ := s.JWT[td]
	if !hasX && !hasJ {
		return nil, false
	}
	b := spiffebundle.New(td)
	if hasX {
		b.SetX509Authorities(x.X509Authorities())
	}
	if hasJ {
		b.SetJWTAuthorities(j.JWTAuthorities())
	}
	b.SetSequenceNumber(s.Seq)
	b.SetRefreshHint(refreshHint)
	return b, true
}

// EndpointHandler serves td's bundle from store at "/" as a SPIFFE bundle
// endpoint does.
func EndpointHandler(td spiffeid.TrustDomain, store *Store, refreshHint time.Duration) (http.Handler, error) {
	src := spiffeSource(func(want spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
		b, ok := store.Snapshot().SPIFFEBundle(want, refreshHint)
		if !ok {
			return nil, fmt.Errorf("trust: no bundle for %s", want)
		}
		return b, nil
	})
	h, err := federation.NewHandler(td, src)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return h, nil
}

// Federation keeps a foreign trust domain's bundle in a Store, fetched from
// its bundle endpoint on the refresh hint it publishes. A failed fetch
// keeps the last good bundle.
type Federation struct {
	TrustDomain spiffeid.TrustDomain
	URL         string
	Profile     string
	// EndpointID authenticates an https_spiffe endpoint; it must be in
	// TrustDomain, whose current bundle (bootstrapped beforehand) verifies it.
	EndpointID spiffeid.ID
	// WebRoots verify an https_web endpoint; nil means the system roots.
	WebRoots *x509.CertPool
	// Fallback is the refresh interval when the bundle has no hint.
	Fallback time.Duration
	OnUpdate func(*spiffebundle.Bundle)
	OnError  func(error)
}

// Watch fetches until ctx ends.
func (f *Federation) Watch(ctx context.Context, store *Store) error {
	var opt federation.FetchOption
	switch f.Profile {
	case ProfileHTTPSSPIFFE:
		if f.EndpointID.TrustDomain() != f.TrustDomain {
			return fmt.Errorf("trust: endpoint %s is not in trust domain %s", f.EndpointID, f.TrustDomain)
		}
		opt = federation.WithSPIFFEAuth(x509Source(func(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
			b, ok := store.Snapshot().Bundles[td]
			if !ok {
				return nil, fmt.Errorf("trust: no bundle for %s yet; bootstrap it (bundle_file)", td)
			}
			return b, nil
		}), f.EndpointID)
	case ProfileHTTPSWeb:
		opt = federation.WithWebPKIRoots(f.WebRoots)
	default:
		return fmt.Errorf("trust: unknown bundle endpoint profile %q", f.Profile)
	}
	err := federation.WatchBundle(ctx, f.TrustDomain, f.URL, &watcher{f: f, store: store}, opt)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type watcher struct {
	f       *Federation
	store   *Store
	failed  bool          // the last fetch failed
	backoff time.Duration // wait before the next retry after a failure
}

// NextRefresh follows the bundle's refresh hint, but after a failed fetch
// retries sooner, from one second doubling up to the hint, so a peer that
// was down at start or comes back is picked up quickly.
func (w *watcher) NextRefresh(hint time.Duration) time.Duration {
	every := hint
	if every <= 0 {
		every = w.f.Fallback
	}
	if every <= 0 {
		every = 5 * time.Minute
	}
	if !w.failed {
		w.backoff = 0
		return every
	}
	w.failed = false
	w.backoff = max(time.Second, min(2*w.backoff, every))
	return w.backoff
}

func (w *watcher) OnUpdate(b *spiffebundle.Bundle) {
	if err := CheckBundleTrustDomain(w.f.TrustDomain, b.X509Authorities()); err != nil {
		w.OnError(err)
		return
	}
	w.store.SetX509Authorities(w.f.TrustDomain, b.X509Authorities())
	w.store.SetJWTAuthorities(w.f.TrustDomain, b.JWTAuthorities())
	if w.f.OnUpdate != nil {
		w.f.OnUpdate(b)
	}
}

func (w *watcher) OnError(err error) {
	w.failed = true
	if w.f.OnError != nil {
		w.f.OnError(err)
	}
}

// CheckBundleTrustDomain refuses CA certificates that name, in a SPIFFE URI
// SAN, a trust domain other than td: a bundle served for the wrong trust
// domain must never be trusted for this one.
func CheckBundleTrustDomain(td spiffeid.TrustDomain, authorities []*x509.Certificate) error {
	for _, c := range authorities {
		for _, u := range c.URIs {
			if !strings.EqualFold(u.Scheme, "spiffe") {
				continue
			}
			if id, err := spiffeid.FromURI(u); err == nil && id.TrustDomain() != td {
				return fmt.Errorf("trust: bundle for %s holds a CA of %s; refused", td, id.TrustDomain())
			}
		}
	}
	return nil
}

type spiffeSource func(spiffeid.TrustDomain) (*spiffebundle.Bundle, error)

func (f spiffeSource) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	return f(td)
}

type x509Source func(spiffeid.TrustDomain) (*x509bundle.Bundle, error)

func (f x509Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return f(td)
}
