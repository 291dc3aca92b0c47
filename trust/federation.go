package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
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

// Limits on what a foreign bundle endpoint may make the agent do. The
// endpoint is another organisation's server (or one an attacker took over):
// its answer is read into memory, parsed and checked on every refresh.
const (
	// MaxBundleBytes bounds a bundle document; a SPIFFE bundle with a few
	// dozen CAs and keys is tens of kilobytes.
	MaxBundleBytes = 1 << 20
	// MaxBundleAuthorities bounds the X.509 and JWT authorities of one
	// bundle; each is checked on every handshake it is used for.
	MaxBundleAuthorities = 256
	// MinRefresh and MaxRefresh clamp the refresh hint an endpoint
	// publishes: below the minimum the agent would fetch in a loop, above
	// the maximum (a hint of years) a peer's CA rotation would go unseen.
	MinRefresh = time.Second
	MaxRefresh = time.Hour
	// DefaultFetchTimeout bounds one fetch, so an endpoint that accepts and
	// never answers cannot stop the refreshes.
	DefaultFetchTimeout = 30 * time.Second
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
	var tlsCfg *tls.Config
	switch f.Profile {
	case ProfileHTTPSSPIFFE:
		if f.EndpointID.TrustDomain() != f.TrustDomain {
			return fmt.Errorf("trust: endpoint %s is not in trust domain %s", f.EndpointID, f.TrustDomain)
		}
		tlsCfg = tlsconfig.TLSClientConfig(x509Source(func(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
			b, ok := store.Snapshot().Bundles[td]
			if !ok {
				return nil, fmt.Errorf("trust: no bundle for %s yet; bootstrap it (bundle_file)", td)
			}
			return b, nil
		}), tlsconfig.AuthorizeID(f.EndpointID))
	case ProfileHTTPSWeb:
		tlsCfg = &tls.Config{RootCAs: f.WebRoots, MinVersion: tls.VersionTLS12}
	default:
		return fmt.Errorf("trust: unknown bundle endpoint profile %q", f.Profile)
	}
	client := BundleClient(tlsCfg, f.FetchTimeout)
	w := &watcher{f: f, store: store}
	var hint time.Duration
	for {
		b, err := FetchBundle(ctx, client, f.TrustDomain, f.URL)
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

// BundleClient is an HTTP client for bundle endpoints: TLS as given, one
// fetch bounded by timeout (0 means DefaultFetchTimeout), no redirects.
// go-spiffe's federation client follows redirects and reads the whole
// body; a bundle endpoint is named by its URL, and a redirect elsewhere is
// refused rather than followed.
func BundleClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, DisableKeepAlives: true},
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// FetchBundle gets td's bundle from url with client, refusing an answer
// that is not 200, is larger than MaxBundleBytes, is not a SPIFFE bundle,
// holds more than MaxBundleAuthorities authorities or holds a CA of another
// trust domain.
func FetchBundle(ctx context.Context, client *http.Client, td spiffeid.TrustDomain, url string) (*spiffebundle.Bundle, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("trust: bundle endpoint %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("trust: bundle endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return nil, fmt.Errorf("trust: bundle endpoint %s answered %s, a redirect to %s; redirects are not followed: configure the final URL", url, resp.Status, loc)
		}
		return nil, fmt.Errorf("trust: bundle endpoint %s answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("trust: bundle endpoint %s: %w", url, err)
	}
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("trust: bundle endpoint %s sent more than %d bytes; refused", url, MaxBundleBytes)
	}
	return ParseBundle(td, data)
}

// ParseBundle parses a SPIFFE bundle (JSON) for td from a peer and checks
// it as FetchBundle does.
func ParseBundle(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("trust: bundle for %s is larger than %d bytes; refused", td, MaxBundleBytes)
	}
	b, err := spiffebundle.Parse(td, data)
	if err != nil {
		return nil, fmt.Errorf("trust: bundle for %s: %w", td, err)
	}
	if n := len(b.X509Authorities()) + len(b.JWTAuthorities()); n > MaxBundleAuthorities {
		return nil, fmt.Errorf("trust: bundle for %s holds %d authorities, more than %d; refused", td, n, MaxBundleAuthorities)
	}
	if err := CheckBundleTrustDomain(td, b.X509Authorities()); err != nil {
		return nil, err
	}
	return b, nil
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

// OnUpdate keeps a bundle that FetchBundle checked.
func (w *watcher) OnUpdate(b *spiffebundle.Bundle) error {
	if len(b.X509Authorities()) == 0 {
		// An endpoint that lost its CAs (or serves JWT keys only) must not
		// make the agent distrust the whole trust domain.
		return fmt.Errorf("trust: bundle for %s has no X.509 authority; keeping the last one", w.f.TrustDomain)
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
