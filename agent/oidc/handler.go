package oidc

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
)

// DefaultMaxAge is how long a verifier may cache a document.
const DefaultMaxAge = 5 * time.Minute

// Paths of the two documents, below the issuer's path.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	KeysPath      = "/keys"
)

// Source is where the keys come from: the agent's bundle store.
type Source interface {
	Snapshot() bundle.Snapshot
}

// Config says what a Handler serves.
type Config struct {
	// Issuer is the https URL verifiers are configured with; the documents
	// are served below its path.
	Issuer      string
	TrustDomain spiffeid.TrustDomain
	Bundles     Source
	// MaxAge is the Cache-Control max-age; zero means DefaultMaxAge.
	MaxAge time.Duration
}

// errNoBundle is served as 503: the source has no JWT bundle for the
// trust domain yet (the agent's CA is not up, or sworn oidc has not heard
// from the agent).
var errNoBundle = errors.New("no JWT bundle for the trust domain yet; retry shortly")

// Handler serves the discovery document and the JWKS.
type Handler struct {
	cfg    Config
	prefix string // the issuer's path, without a trailing slash
	cache  string // Cache-Control value

	mu       sync.Mutex
	rendered *documents // of the last snapshot served
}

// documents are the two responses for one snapshot.
type documents struct {
	seq       uint64
	discovery response
	keys      response
}

type response struct {
	body []byte
	etag string
}

// New checks cfg and returns its Handler.
func New(cfg Config) (*Handler, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("oidc: issuer %q is not an https URL without query, fragment or user", cfg.Issuer)
	}
	if cfg.TrustDomain.IsZero() || cfg.Bundles == nil {
		return nil, errors.New("oidc: a trust domain and a bundle source are required")
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	return &Handler{
		cfg:    cfg,
		prefix: strings.TrimSuffix(u.Path, "/"),
		cache:  "public, max-age=" + strconv.Itoa(int(cfg.MaxAge/time.Second)),
	}, nil
}

// ServeHTTP answers GET and HEAD for the two documents.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var pick func(*documents) response
	switch r.URL.Path {
	case h.prefix + DiscoveryPath:
		pick = func(d *documents) response { return d.discovery }
	case h.prefix + KeysPath:
		pick = func(d *documents) response { return d.keys }
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	docs, err := h.documents()
	if errors.Is(err, errNoBundle) {
		// An empty key set would be cached by verifiers for max-age and
		// fail every token meanwhile; "not yet" is not cached.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	resp := pick(docs)
	hdr := w.Header()
	hdr.Set("Cache-Control", h.cache)
	hdr.Set("ETag", resp.etag)
	if matches(r.Header.Get("If-None-Match"), resp.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(resp.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(resp.body)
}

// matches reports whether an If-None-Match header names etag: RFC 9110
// compares weakly for If-None-Match, so W/"x" matches "x".
func matches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// documents returns the responses for the store's current snapshot,
// rendering them only when the snapshot changed.
func (h *Handler) documents() (*documents, error) {
	snap := h.cfg.Bundles.Snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.rendered; d != nil && d.seq == snap.Seq {
		return d, nil
	}
	b, ok := snap.JWT[h.cfg.TrustDomain]
	if !ok {
		return nil, errNoBundle
	}
	d, err := render(h.cfg.Issuer, b.JWTAuthorities())
	if err != nil {
		return nil, err
	}
	d.seq = snap.Seq
	h.rendered = d
	return d, nil
}
