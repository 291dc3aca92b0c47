package bundle

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
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Limits on what a foreign bundle endpoint may make the agent do. The
// endpoint is another organisation's server (or one an attacker took over):
// its answer is read into memory, parsed and checked on every refresh.
const (
	// MaxBytes bounds a bundle document; a SPIFFE bundle with a few dozen
	// CAs and keys is tens of kilobytes.
	MaxBytes = 1 << 20
	// MaxAuthorities bounds the X.509 and JWT authorities of one bundle;
	// each is checked on every handshake it is used for.
	MaxAuthorities = 256
	// MinRefresh and MaxRefresh clamp the refresh hint an endpoint
	// publishes: below the minimum the agent would fetch in a loop, above
	// the maximum (a hint of years) a peer's CA rotation would go unseen.
	MinRefresh = time.Second
	MaxRefresh = time.Hour
	// DefaultFetchTimeout bounds one fetch, so an endpoint that accepts and
	// never answers cannot stop the refreshes.
	DefaultFetchTimeout = 30 * time.Second
)

// NewClient is an HTTP client for bundle endpoints: TLS as given, one
// fetch bounded by timeout (0 means DefaultFetchTimeout), no redirects.
// go-spiffe's federation client follows redirects and reads the whole
// body; a bundle endpoint is named by its URL, and a redirect elsewhere is
// refused rather than followed.
func NewClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
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

// Fetch gets td's bundle from url with client, refusing an answer that is
// not 200, and, as Parse does (ErrInvalid, naming url), one that is larger
// than MaxBytes, is not a SPIFFE bundle, holds more than MaxAuthorities
// authorities or holds a CA of another trust domain.
func Fetch(ctx context.Context, client *http.Client, td spiffeid.TrustDomain, url string) (*spiffebundle.Bundle, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("bundle: endpoint %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bundle: endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return nil, fmt.Errorf("bundle: endpoint %s answered %s, a redirect to %s; redirects are not followed: configure the final URL", url, resp.Status, loc)
		}
		return nil, fmt.Errorf("bundle: endpoint %s answered %s", url, resp.Status)
	}
	// One byte past the limit is enough for checkSize to refuse the
	// answer as too large; the rest is never read.
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bundle: endpoint %s: %w", url, err)
	}
	if err := checkSize(td, data); err != nil {
		return nil, fmt.Errorf("bundle: endpoint %s: %w", url, err)
	}
	b, err := parseJSON(td, data)
	if err != nil {
		return nil, fmt.Errorf("bundle: endpoint %s: %w", url, err)
	}
	return b, nil
}

// Parse parses a SPIFFE bundle (JSON) for td from a peer and checks it as
// Fetch does. Its refusals are ErrInvalid.
func Parse(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	if err := checkSize(td, data); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b, err := parseJSON(td, data)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// checkSize refuses a document larger than MaxBytes; every entry point
// (Parse, Decode, Load, Fetch) checks it once, before parsing.
func checkSize(td spiffeid.TrustDomain, data []byte) error {
	if len(data) > MaxBytes {
		return invalid{fmt.Errorf("bundle for %s is larger than %d bytes; refused", td, MaxBytes)}
	}
	return nil
}

// parseJSON parses a SPIFFE bundle document already checked by checkSize.
func parseJSON(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	b, err := spiffebundle.Parse(td, data)
	if err != nil {
		return nil, invalid{fmt.Errorf("bundle for %s: %w", td, err)}
	}
	if err := checkLimits(td, b); err != nil {
		return nil, err
	}
	return b, nil
}

// checkLimits refuses more than MaxAuthorities authorities and a CA of
// another trust domain.
func checkLimits(td spiffeid.TrustDomain, b *spiffebundle.Bundle) error {
	if n := len(b.X509Authorities()) + len(b.JWTAuthorities()); n > MaxAuthorities {
		return invalid{fmt.Errorf("bundle for %s holds %d authorities, more than %d; refused", td, n, MaxAuthorities)}
	}
	return checkTrustDomain(td, b.X509Authorities())
}

// CheckTrustDomain refuses CA certificates that name, in a SPIFFE URI SAN,
// a trust domain other than td: a bundle served for the wrong trust domain
// must never be trusted for this one.
func CheckTrustDomain(td spiffeid.TrustDomain, authorities []*x509.Certificate) error {
	if err := checkTrustDomain(td, authorities); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

func checkTrustDomain(td spiffeid.TrustDomain, authorities []*x509.Certificate) error {
	for _, c := range authorities {
		for _, u := range c.URIs {
			if !strings.EqualFold(u.Scheme, "spiffe") {
				continue
			}
			if id, err := spiffeid.FromURI(u); err == nil && id.TrustDomain() != td {
				return invalid{fmt.Errorf("bundle for %s holds a CA of %s; refused", td, id.TrustDomain())}
			}
		}
	}
	return nil
}
