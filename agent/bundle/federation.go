package bundle

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// Bundle endpoint profiles.
const (
	ProfileHTTPSSPIFFE = "https_spiffe"
	ProfileHTTPSWeb    = "https_web"
)

// Federation keeps a foreign trust domain's bundle in a Store, fetched from
// its bundle endpoint on the refresh hint it publishes (clamped to
// [MinRefresh, MaxRefresh]). A failed fetch keeps the last good bundle.
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
	// FetchTimeout bounds one fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	OnUpdate     func(*spiffebundle.Bundle)
	OnError      func(error)
}

// Watch fetches until ctx ends.
func (f *Federation) Watch(ctx context.Context, store *Store) error {
	tlsCfg, err := f.clientTLS(store)
	if err != nil {
		return err
	}
	client := NewClient(tlsCfg, f.FetchTimeout)
	w := &watcher{f: f, store: store}
	var hint time.Duration
	for {
		b, err := Fetch(ctx, client, f.TrustDomain, f.URL)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = w.OnUpdate(b)
		}
		if err != nil {
			w.OnError(err)
		} else {
			hint, _ = b.RefreshHint()
		}
		t := time.NewTimer(w.NextRefresh(hint))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// clientTLS authenticates the endpoint as f.Profile says: https_spiffe
// against the trust domain's bundle as the store holds it at each
// handshake, https_web against WebRoots.
func (f *Federation) clientTLS(store *Store) (*tls.Config, error) {
	switch f.Profile {
	case ProfileHTTPSSPIFFE:
		if f.EndpointID.TrustDomain() != f.TrustDomain {
			return nil, fmt.Errorf("bundle: endpoint %s is not in trust domain %s", f.EndpointID, f.TrustDomain)
		}
		return tlsconfig.TLSClientConfig(x509Source(func(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
			b, ok := store.Snapshot().Bundles[td]
			if !ok {
				return nil, fmt.Errorf("bundle: no bundle for %s yet; bootstrap it (bundle_file)", td)
			}
			return b, nil
		}), tlsconfig.AuthorizeID(f.EndpointID)), nil
	case ProfileHTTPSWeb:
		return &tls.Config{RootCAs: f.WebRoots, MinVersion: tls.VersionTLS12}, nil
	default:
		return nil, fmt.Errorf("bundle: unknown bundle endpoint profile %q", f.Profile)
	}
}

type watcher struct {
	f       *Federation
	store   *Store
	failed  bool          // the last fetch failed
	backoff time.Duration // wait before the next retry after a failure
}

// NextRefresh follows the bundle's refresh hint, clamped to [MinRefresh,
// MaxRefresh], but after a failed fetch retries sooner, from one second
// doubling up to the hint, so a peer that was down at start or comes back
// is picked up quickly.
func (w *watcher) NextRefresh(hint time.Duration) time.Duration {
	every := hint
	if every <= 0 {
		every = w.f.Fallback
	}
	if every <= 0 {
		every = 5 * time.Minute
	}
	every = min(max(every, MinRefresh), MaxRefresh)
	if !w.failed {
		w.backoff = 0
		return every
	}
	w.failed = false
	w.backoff = max(time.Second, min(2*w.backoff, every))
	return w.backoff
}

// OnUpdate keeps a bundle that Fetch checked.
func (w *watcher) OnUpdate(b *spiffebundle.Bundle) error {
	if len(b.X509Authorities()) == 0 {
		// An endpoint that lost its CAs (or serves JWT keys only) must not
		// make the agent distrust the whole trust domain.
		return fmt.Errorf("bundle: bundle for %s has no X.509 authority; keeping the last one", w.f.TrustDomain)
	}
	w.store.SetX509Authorities(w.f.TrustDomain, b.X509Authorities())
	w.store.SetJWTAuthorities(w.f.TrustDomain, b.JWTAuthorities())
	if w.f.OnUpdate != nil {
		w.f.OnUpdate(b)
	}
	return nil
}

func (w *watcher) OnError(err error) {
	w.failed = true
	if w.f.OnError != nil {
		w.f.OnError(err)
	}
}

type x509Source func(spiffeid.TrustDomain) (*x509bundle.Bundle, error)

func (f x509Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return f(td)
}
