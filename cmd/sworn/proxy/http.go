package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"

	"github.com/sworn-id/sworn/trust"
)

// XFCC is the header that carries the verified peer to the backend.
const XFCC = "X-Forwarded-Client-Cert"

// methodOverrides are the headers by which frameworks let a request say
// it is another method than its request line's (Rails, Laravel, Symfony,
// Express's method-override, ASP.NET, Google APIs). A backend that honours
// one would run a DELETE that a GET-only rule admitted, so a request
// carrying any of them is refused. Names are compared as normalName does.
var methodOverrides = []string{"x-http-method-override", "x-http-method", "x-method-override"}

// pathOverrides are the headers by which frameworks let a request say it
// is for another path than its request line's (IIS URL Rewrite's
// X-Original-URL and X-Rewrite-URL, honoured by Symfony, Yii, Zend and
// Drupal). A backend that routes on one would serve /admin to a request
// decided as /public/x, so a request carrying any of them is refused.
var pathOverrides = []string{"x-original-url", "x-rewrite-url", "x-override-url", "x-original-uri"}

// normalName is a header name as nginx (underscores_in_headers), Envoy
// and CGI/WSGI gateways see it: case folded and "_" read as "-", so
// X_Forwarded_Client_Cert is X-Forwarded-Client-Cert.
func normalName(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// proxyOwned reports whether a header (by normalName) is one the proxy
// vouches for: XFCC and the forwarding headers. Whatever the client sent
// under such a name, in any spelling, is dropped before the proxy sets its
// own, so a backend never reads a forged peer, client address or scheme.
// X-Real-IP and Forwarded are dropped too: the proxy does not set them, and
// a backend that trusts them from its loopback peer would trust the client.
func proxyOwned(n string) bool {
	return n == "x-forwarded-client-cert" || n == "forwarded" || n == "x-real-ip" || strings.HasPrefix(n, "x-forwarded-")
}

// route is what authorizeHTTP decided, handed to the rewrite that forwards.
type route struct {
	path string // canonical, decoded: the path decided on and forwarded
	xfcc string
}

type routeKey struct{}

// httpHandler is HTTP mode: each request is authorised, then forwarded to
// the target by a reverse proxy over transport (nil: the default).
func (p *Proxy) httpHandler(transport http.RoundTripper) http.Handler {
	host := p.cfg.Target
	if p.network == "unix" {
		// The transport dials the socket; the Host header needs a name.
		host = "localhost"
	}
	target := &url.URL{Scheme: "http", Host: host}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			// SetURL also makes the backend's Host header the target's,
			// so neither a Host header nor an absolute-form target (which
			// authorizeHTTP refuses anyway) can choose a virtual host.
			r.SetURL(target)
			rt, ok := r.In.Context().Value(routeKey{}).(route)
			if !ok {
				// Unreachable: the proxy is only reached through
				// authorizeHTTP. Fail closed: a URL without a host
				// is an error (502), never a request.
				r.Out.URL.Host = ""
				return
			}
			// Forward exactly the path decided on. With RawPath empty,
			// net/http writes url.URL{Path: rt.path}.EscapedPath() on
			// the wire, whose decoding is rt.path again.
			r.Out.URL.Path, r.Out.URL.RawPath, r.Out.URL.Opaque, r.Out.URL.User = rt.path, "", "", nil
			for name := range r.Out.Header {
				if proxyOwned(normalName(name)) {
					delete(r.Out.Header, name)
				}
			}
			// Request trailers come after the body, where no header
			// check above sees them, and a backend that merges them
			// into the headers would read whatever the client wrote
			// there. Over HTTP/1.1 nobody needs them: none is forwarded.
			r.Out.Trailer = nil
			r.SetXForwarded()
			r.Out.Header.Set(XFCC, rt.xfcc)
		},
		Transport: transport,
		ErrorLog:  slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelWarn),
	}
	return p.authorizeHTTP(rp)
}

// targetTransport is the transport HTTP mode forwards over: every request
// goes to the configured target and nowhere else. It never takes a proxy
// from HTTP_PROXY/HTTPS_PROXY (the default transport does, for any target
// but loopback), which would hand each request, its verified
// X-Forwarded-Client-Cert included, to whoever set the environment.
func (p *Proxy) targetTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return p.dialTarget(ctx) }
	return t
}

// authorizeHTTP decides each request by peer, method and canonical path
// (trust.CanonicalPath), and passes on only those the policy allows.
// Requests that are not canonical, or that could make the backend act on
// something other than what was decided (a method override, a protocol
// upgrade other than WebSocket), are refused with 400 before any rule is
// looked at; requests no rule allows get 403.
func (p *Proxy) authorizeHTTP(next http.Handler) http.Handler {
	self := ""
	if svid, err := p.cfg.Source.GetX509SVID(); err == nil {
		self = svid.ID.String()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "mTLS required", http.StatusForbidden)
			return
		}
		id, err := peerID(*r.TLS)
		if err != nil {
			http.Error(w, "no SPIFFE ID", http.StatusForbidden)
			return
		}
		path, err := trust.CanonicalPath(r.RequestURI)
		if err == nil {
			err = checkSemantics(r)
		}
		if err != nil {
			p.cfg.Metrics.Requests.WithLabelValues("bad_request").Inc()
			p.cfg.Logger.Info("http request refused", "peer", id.String(), "method", r.Method, "target", r.RequestURI, "error", err)
			http.Error(w, "sworn proxy: bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		d := p.cfg.Guard.Policy().DecideHTTPPath(id, r.Method, path)
		p.cfg.Logger.Info("http request", "peer", id.String(), "method", r.Method, "path", path, "allowed", d.Allowed, "rule", d.Rule)
		if !d.Allowed {
			p.cfg.Metrics.Requests.WithLabelValues("denied").Inc()
			http.Error(w, "forbidden by policy", http.StatusForbidden)
			return
		}
		p.cfg.Metrics.Requests.WithLabelValues("allowed").Inc()
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		rt := route{path: d.Path, xfcc: fmt.Sprintf("By=%s;Hash=%s;URI=%s", self, hex.EncodeToString(sum[:]), id)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
	})
}

// phpKey is a query key as PHP names it in $_GET and $_REQUEST (leading
// spaces dropped; ' ', '.' and '[' read as '_'), so ?.method=DELETE, which
// Laravel and Symfony see as _method, is caught too.
func phpKey(key string) string {
	key = strings.TrimLeft(key, " ")
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '[' {
			return '_'
		}
		return r
	}, key)
}

// checkSemantics refuses what would make the backend do something other
// than the request line says: a method override (header, in any spelling,
// or _method in the query; one in a form body is not seen), and a protocol
// upgrade other than WebSocket. After an upgrade the connection is a byte
// stream the proxy cannot decide on; h2c in particular would give the
// client an HTTP/2 connection to the backend on which every request
// bypasses the rules.
func checkSemantics(r *http.Request) error {
	for name := range r.Header {
		n := normalName(name)
		if slices.Contains(methodOverrides, n) {
			return fmt.Errorf("method override header %s: the rules decide on the request method, so overrides are refused", name)
		}
		if slices.Contains(pathOverrides, n) {
			return fmt.Errorf("path override header %s: the rules decide on the request path, so overrides are refused", name)
		}
	}
	for _, kv := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
		key, _, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if strings.EqualFold(phpKey(key), "_method") {
			return fmt.Errorf("method override %q in the query: the rules decide on the request method, so overrides are refused", kv)
		}
	}
	for _, up := range r.Header.Values("Upgrade") {
		for _, proto := range strings.Split(up, ",") {
			if name, _, _ := strings.Cut(strings.TrimSpace(proto), "/"); !strings.EqualFold(name, "websocket") {
				return fmt.Errorf("upgrade to %q: only websocket upgrades are forwarded, as after one the proxy can no longer decide each request", strings.TrimSpace(proto))
			}
		}
	}
	return nil
}
