package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

// fuzzSource is the proxy's own identity; the fuzz target never shakes
// hands, so no bundle is needed.
type fuzzSource struct{ id spiffeid.ID }

func (s fuzzSource) GetX509SVID() (*x509svid.SVID, error) { return &x509svid.SVID{ID: s.id}, nil }
func (s fuzzSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.New(td), nil
}

// recorder is the reverse proxy's transport: it keeps the outgoing
// request, whose URL.RequestURI() is what net/http's transport writes on
// the request line, and answers 200.
type recorder struct{ out *http.Request }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.out = req
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// peerCert is a certificate naming the peer; the handler reads the ID
// from the connection state the handshake (not run here) verified.
func peerCert(t testing.TB, id string) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.SelfSigned(t, &x509.Certificate{URIs: []*url.URL{u}}).Cert
}

// lenientServe is what a permissive backend makes of a raw path: decoded
// twice, \ read as / (Windows, some frameworks), ;parameters dropped from
// each segment (Tomcat, Spring), a segment of dots and spaces read as "."
// or ".." (Windows trims trailing dots and spaces), slashes merged.
func lenientServe(raw string) string {
	p := raw
	for range 2 {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.ReplaceAll(p, `\`, "/")
	var out []string
	for _, s := range strings.Split(p, "/") {
		name, _, _ := strings.Cut(s, ";")
		switch {
		case name == "":
		case strings.Trim(name, ". ") == "":
			if strings.Count(name, ".") >= 2 && len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, name)
		}
	}
	served := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		served += "/"
	}
	return served
}

// pathDecisionSeeds are the traversal and smuggling forms the nginx test
// sends, and near misses of them.
var pathDecisionSeeds = []string{
	"/api/orders/42", "/api/orders/../../admin/secret.txt", "/api/orders/%2e%2e/%2e%2e/admin/secret.txt",
	"/api/orders/%2E%2E/%2E%2E/admin", "/api/orders/..%2f..%2fadmin", "/api/orders/..%2F..%2Fadmin",
	"/api/orders/.%2e/admin", "/api/orders/..;/..;/admin", "/api/orders/..%3b/admin", `/api/orders/..\..\admin`,
	"/api/orders/..%5c..%5cadmin", "/api/orders/x%00/../../admin", "/api/orders/%252e%252e/admin",
	"/api/orders/%c0%ae%c0%ae/admin", "/api/orders/%ef%bc%8e%ef%bc%8e/admin", "/api/orders/x#/../../admin",
	"http://host/api/orders/../../admin", "http://host/api/orders/1", "host:443", "*", "//api//orders//42",
	"/api/orders//..//admin", "/api/orders/%34%32", "/api/orders/caf%C3%A9", "/api/orders/?next=/../../admin",
	"/api/orders/...", "/api/orders/..%20", "/api/orders/%2e", "/api/orders/;/../admin", "/api/orders/%3F%23",
	"/api/orders/1?_method=DELETE", "/api/orders/1;/..",
}

// FuzzHTTPPathDecision runs request targets through HTTP mode's handler
// and reverse proxy, as Go's server parses them, with one rule: client-ok
// may GET /api/orders/*. Whenever a request is forwarded, the path on the
// wire is canonical (decodes to the path decided on, which canonicalises
// to itself), the rule matches that path, a backend that decodes and
// resolves dot segments serves exactly it, a lenient one still serves
// something under /api/orders/, and the query and peer headers are the
// ones decided on.
func FuzzHTTPPathDecision(f *testing.F) {
	for _, s := range pathDecisionSeeds {
		f.Add(s)
	}
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET /api/orders/*")
	if err != nil {
		f.Fatal(err)
	}
	pol, _ := trust.NewPolicy(nil, nil)
	const backend = "127.0.0.1:9"
	p, err := New(Config{Mode: ModeHTTP, Target: backend, Source: fuzzSource{spiffeid.RequireFromString("spiffe://example.org/server")},
		Guard: trust.NewGuard(pol.WithHTTPRules(rule), trust.ForHTTP())})
	if err != nil {
		f.Fatal(err)
	}
	rec := &recorder{}
	h := p.httpHandler(rec)
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peerCert(f, "spiffe://example.org/client-ok")}}

	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: sworn.test\r\n\r\n")))
		if err != nil {
			return // Go's server answers 400 before any handler
		}
		req.TLS, req.RemoteAddr = state, "127.0.0.1:40000"
		rec.out = nil
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if rec.out == nil {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusForbidden {
				t.Fatalf("%q: not forwarded, but answered %d", target, w.Code)
			}
			return
		}
		if w.Code != http.StatusOK {
			t.Fatalf("%q: forwarded, but answered %d", target, w.Code)
		}
		checkForwarded(t, target, backend, rec.out)
	})
}

// checkForwarded checks a request the handler forwarded for the client's
// target: it goes to backend, its path on the wire is canonical and is the
// one decided on, the rule matches it, backends that resolve dots (strictly
// or leniently) serve it under /api/orders/, and the query and XFCC are the
// ones decided on.
func checkForwarded(t *testing.T, target, backend string, out *http.Request) {
	t.Helper()
	if out.URL.Host != backend || (out.Host != "" && out.Host != backend) || out.URL.Scheme != "http" {
		t.Fatalf("%q: forwarded to host %q (Host %q), not the target", target, out.URL.Host, out.Host)
	}
	wire := out.URL.RequestURI()
	wirePath, wireQuery, _ := strings.Cut(wire, "?")
	decided, err := trust.CanonicalPath(wire)
	if err != nil {
		t.Fatalf("%q: forwarded %q, which is not canonical: %v", target, wire, err)
	}
	if (&url.URL{Path: decided}).EscapedPath() != wirePath {
		t.Fatalf("%q: forwarded %q, not the canonical encoding of %q", target, wire, decided)
	}
	if dec, err := url.PathUnescape(wirePath); err != nil || dec != decided {
		t.Fatalf("%q: forwarded %q, which decodes to %q, %v; decided on %q", target, wire, dec, err, decided)
	}
	if fromClient, err := trust.CanonicalPath(target); err != nil || fromClient != decided {
		t.Fatalf("%q: the client's path is %q (%v), the forwarded one %q", target, fromClient, err, decided)
	}
	if !strings.HasPrefix(decided, "/api/orders/") {
		t.Fatalf("%q: forwarded %q, which the rule does not match", target, decided)
	}
	if served, _ := testutil.ResolvePath(wirePath); served != decided {
		t.Fatalf("%q: forwarded %q, which a resolving backend serves as %q, not %q", target, wire, served, decided)
	}
	if served := lenientServe(wirePath); !strings.HasPrefix(served, "/api/orders/") {
		t.Fatalf("%q: forwarded %q, which a lenient backend serves as %q", target, wire, served)
	}
	if _, q, _ := strings.Cut(target, "?"); wireQuery != q {
		t.Fatalf("%q: forwarded query %q, want the client's %q", target, wireQuery, q)
	}
	if x := out.Header.Values(XFCC); len(x) != 1 || !strings.HasSuffix(x[0], ";URI=spiffe://example.org/client-ok") {
		t.Fatalf("%q: forwarded XFCC %q", target, x)
	}
}
