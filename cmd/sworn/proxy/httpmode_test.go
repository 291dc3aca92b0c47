package proxy_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

// get builds a raw HTTP/1.1 request line and headers (with Host:
// sworn.test unless one is given), closing after one response.
func get(method, target string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	if !slices.ContainsFunc(headers, func(h string) bool { return strings.HasPrefix(h, "Host:") }) {
		b.WriteString("Host: sworn.test\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// smuggled is a request hidden in another's body: it must never reach
// nginx as a request of its own.
const smuggled = "GET /admin/secret.txt HTTP/1.1\r\nHost: sworn.test\r\n\r\n"

// nginxCase is one raw request (or pipeline) sent through the HTTP proxy.
type nginxCase struct {
	name string
	req  string
	// want is the status of each response, in order.
	want []int
	// seen is the request URI nginx must echo for an allowed request: the
	// canonical form the proxy decided on.
	seen string
	// body is a fragment the (first) response body must contain.
	body string
}

// nginxCases are every known way of reaching /admin/secret.txt through a
// rule that allows GET /api/orders/*, and the allowed forms the proxy
// must forward in canonical form.
var nginxCases = []nginxCase{
	{name: "allowed", req: get("GET", "/api/orders/42"), want: []int{200}, seen: "/api/orders/42"},
	{name: "not in the rule", req: get("GET", "/admin/secret.txt"), want: []int{403}},
	{name: "prefix is a path, not a string", req: get("GET", "/api/orders"), want: []int{403}},
	{name: "method not in the rule", req: get("POST", "/api/orders/42", "Content-Length: 0"), want: []int{403}},

	{name: "dot-dot", req: get("GET", "/api/orders/../../admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "dot", req: get("GET", "/api/orders/./../../admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "trailing dot-dot", req: get("GET", "/api/orders/x/.."), want: []int{400}, body: "dot segment"},
	{name: "encoded dot-dot", req: get("GET", "/api/orders/%2e%2e/%2e%2e/admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "encoded dot-dot, upper case", req: get("GET", "/api/orders/%2E%2E/%2E%2E/admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "half-encoded dot-dot", req: get("GET", "/api/orders/.%2e/%2e./admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "encoded slash", req: get("GET", "/api/orders/..%2f..%2fadmin/secret.txt"), want: []int{400}, body: "encoded /"},
	{name: "encoded slash, upper case", req: get("GET", "/api/orders/..%2F..%2Fadmin/secret.txt"), want: []int{400}, body: "encoded /"},
	{name: "all encoded", req: get("GET", "/api/orders/%2e%2e%2f%2e%2e%2fadmin%2fsecret.txt"), want: []int{400}},
	{name: "tomcat path parameter", req: get("GET", "/api/orders/..;/..;/admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "tomcat path parameter, encoded ;", req: get("GET", "/api/orders/..%3b/..%3b/admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "backslash", req: get("GET", `/api/orders/..\..\admin\secret.txt`), want: []int{400}, body: `\`},
	{name: "encoded backslash", req: get("GET", "/api/orders/..%5c..%5cadmin%5csecret.txt"), want: []int{400}, body: `\`},
	{name: "NUL", req: get("GET", "/api/orders/x%00/../../admin/secret.txt"), want: []int{400}, body: "control"},
	{name: "encoded control", req: get("GET", "/api/orders/x%0d%0aX-Injected:%201"), want: []int{400}, body: "control"},
	{name: "double encoding", req: get("GET", "/api/orders/%252e%252e/%252e%252e/admin/secret.txt"), want: []int{400}, body: "%25"},
	{name: "overlong UTF-8 dot", req: get("GET", "/api/orders/%c0%ae%c0%ae/%c0%ae%c0%ae/admin/secret.txt"), want: []int{400}, body: "UTF-8"},
	{name: "fullwidth dots", req: get("GET", "/api/orders/%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/admin/secret.txt"), want: []int{400}, body: "U+FF0E"},
	{name: "fragment", req: get("GET", "/api/orders/x#/../../admin/secret.txt"), want: []int{400}, body: "#"},
	{name: "absolute form", req: get("GET", "http://sworn.test/api/orders/../../admin/secret.txt"), want: []int{400}, body: "origin-form"},
	{name: "absolute form, clean path", req: get("GET", "http://127.0.0.1/admin/secret.txt"), want: []int{400}, body: "origin-form"},
	{name: "authority form", req: get("CONNECT", "127.0.0.1:80"), want: []int{400}, body: "origin-form"},

	{name: "empty segments are merged", req: get("GET", "/api/orders//42"), want: []int{200}, seen: "/api/orders/42"},
	{name: "leading empty segment is merged", req: get("GET", "//api//orders/42"), want: []int{200}, seen: "/api/orders/42"},
	{name: "merged slashes do not open a traversal", req: get("GET", "/api/orders//..//..//admin/secret.txt"), want: []int{400}, body: "dot segment"},
	{name: "unreserved escapes are forwarded decoded", req: get("GET", "/api/orders/%34%32"), want: []int{200}, seen: "/api/orders/42"},
	{name: "UTF-8 stays encoded", req: get("GET", "/api/orders/caf%c3%a9"), want: []int{200}, seen: "/api/orders/caf%C3%A9"},
	{name: "dot-dot in the query is not a path", req: get("GET", "/api/orders/?next=/../../admin/secret.txt"), want: []int{200}, seen: "/api/orders/?next=/../../admin/secret.txt"},

	{name: "method override header", req: get("GET", "/api/orders/42", "X-HTTP-Method-Override: DELETE"), want: []int{400}, body: "method override"},
	{name: "method override, underscores", req: get("GET", "/api/orders/42", "X_HTTP_Method_Override: DELETE"), want: []int{400}, body: "method override"},
	{name: "X-HTTP-Method", req: get("GET", "/api/orders/42", "x-http-method: DELETE"), want: []int{400}, body: "method override"},
	{name: "X-Method-Override", req: get("GET", "/api/orders/42", "X-Method-Override: DELETE"), want: []int{400}, body: "method override"},
	{name: "_method in the query", req: get("GET", "/api/orders/42?_method=DELETE"), want: []int{400}, body: "method override"},
	{name: "_method as PHP reads .method", req: get("GET", "/api/orders/42?%2Emethod=DELETE"), want: []int{400}, body: "method override"},
	{name: "_method as PHP reads  method[", req: get("GET", "/api/orders/42?+[method=DELETE"), want: []int{400}, body: "method override"},
	{name: "X-Original-URL", req: get("GET", "/api/orders/42", "X-Original-URL: /admin/secret.txt"), want: []int{400}, body: "path override"},
	{name: "X-Rewrite-URL, underscores", req: get("GET", "/api/orders/42", "X_Rewrite_Url: /admin/secret.txt"), want: []int{400}, body: "path override"},
	{name: "h2c upgrade", req: get("GET", "/api/orders/42", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", "Connection: Upgrade, HTTP2-Settings"), want: []int{400}, body: "upgrade"},

	{name: "CL.TE smuggling", req: "GET /api/orders/1 HTTP/1.1\r\nHost: sworn.test\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		want: []int{200, 403}, seen: "/api/orders/1"},
	{name: "TE.CL smuggling", req: fmt.Sprintf("GET /api/orders/2 HTTP/1.1\r\nHost: sworn.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled),
		want: []int{200}, seen: "/api/orders/2"},
	{name: "obfuscated Transfer-Encoding", req: "GET /api/orders/3 HTTP/1.1\r\nHost: sworn.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, want: []int{501}},
	{name: "two Content-Lengths", req: "GET /api/orders/4 HTTP/1.1\r\nHost: sworn.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n" + smuggled, want: []int{400}},
}

// TestHTTPModeAgainstNginx puts the proxy in HTTP mode, with one rule
// (client-ok may GET /api/orders/*), in front of a real nginx that
// normalises paths as it serves them, and sends every known way of
// reaching /admin/secret.txt through that rule, raw over mTLS. Nothing but
// the canonical form the proxy decided on may reach nginx.
func TestHTTPModeAgainstNginx(t *testing.T) {
	ngx := startNginx(t)
	a := startAgent(t)
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET /api/orders/*")
	if err != nil {
		t.Fatal(err)
	}
	addr := runProxy(t, proxy.Config{Mode: proxy.ModeHTTP, Target: ngx.addr, Source: as(t, a, "/server"),
		Guard: trust.NewGuard(mustPolicy(t).WithHTTPRules(rule), trust.ForHTTP())})
	client := trust.ClientConfig(as(t, a, "/client-ok"), guard(t, []string{"spiffe://example.org/server"}, nil))

	var wantSeen []string
	for _, tt := range nginxCases {
		if tt.seen != "" {
			wantSeen = append(wantSeen, "GET "+tt.seen)
		}
		t.Run(tt.name, func(t *testing.T) { checkNginxCase(t, client, addr, tt) })
	}
	t.Run("forwarded headers cannot be forged", func(t *testing.T) { checkForgedHeaders(t, client, addr) })
	wantSeen = append(wantSeen, "GET /api/orders/h")

	ngx.stop(t)
	lines := ngx.requestLines(t)
	for _, l := range lines {
		if path, _, _ := strings.Cut(l, "?"); strings.Contains(path, "admin") || strings.Contains(path, "..") {
			t.Errorf("nginx received %q", l)
		}
	}
	slices.Sort(lines)
	slices.Sort(wantSeen)
	if !slices.Equal(lines, wantSeen) {
		t.Errorf("nginx received\n  %s\nwant exactly the allowed requests, in canonical form\n  %s", strings.Join(lines, "\n  "), strings.Join(wantSeen, "\n  "))
	}
}

// checkNginxCase sends tt raw through the proxy at addr and checks the
// statuses, the body and what nginx echoed it saw.
func checkNginxCase(t *testing.T, client *tls.Config, addr string, tt nginxCase) {
	t.Helper()
	got := rawRequests(t, client, addr, tt.req)
	var statuses []int
	for _, r := range got {
		statuses = append(statuses, r.status)
		if strings.Contains(r.body, secret) {
			t.Fatalf("the secret came back: %q", r.body)
		}
	}
	if !slices.Equal(statuses, tt.want) {
		t.Fatalf("statuses %v, want %v; first body %q", statuses, tt.want, got[0].body)
	}
	if tt.body != "" && !strings.Contains(got[0].body, tt.body) {
		t.Errorf("body %q does not say %q", got[0].body, tt.body)
	}
	if tt.seen != "" && !strings.Contains(got[0].body, "request_uri="+tt.seen+" ") {
		t.Errorf("nginx saw %q, want request_uri=%s (what the proxy decided on)", got[0].body, tt.seen)
	}
}

// checkForgedHeaders sends forged forwarding headers in every spelling and
// checks nginx saw only the proxy's.
func checkForgedHeaders(t *testing.T, client *tls.Config, addr string) {
	t.Helper()
	got := rawRequests(t, client, addr, get("GET", "/api/orders/h",
		"Host: evil.example",
		"X_Forwarded_Client_Cert: By=spiffe://evil;URI=spiffe://example.org/admin",
		"X_Forwarded_For: 203.0.113.9",
		"X-Forwarded-For: 203.0.113.10",
		"X_Real_IP: 203.0.113.11"))
	body := got[0].body
	for _, want := range []string{"host=127.0.0.1 ", "xfcc=[By=spiffe://example.org/server;Hash=", ";URI=spiffe://example.org/client-ok]", "xff=[127.0.0.1]", "real_ip=[]"} {
		if !strings.Contains(body, want) {
			t.Errorf("nginx saw %q; want it to contain %q", body, want)
		}
	}
	if strings.Contains(body, "203.0.113") || strings.Contains(body, "evil") {
		t.Errorf("a client-sent header reached nginx: %q", body)
	}
}

// TestHTTPModeDropsForgedForwardingHeaders sends, raw, every spelling of
// the headers the proxy vouches for (underscores read as dashes, as
// nginx, Envoy and CGI/WSGI gateways do) and checks that the backend sees
// each once, with the proxy's value.
func TestHTTPModeDropsForgedForwardingHeaders(t *testing.T) {
	a := startAgent(t)
	seen := make(chan http.Header, 1)
	trailers := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // trailers arrive after the body
		seen <- r.Header.Clone()
		trailers <- r.Trailer.Clone()
	}))
	t.Cleanup(backend.Close)
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET,POST /api/*")
	if err != nil {
		t.Fatal(err)
	}
	addr := runProxy(t, proxy.Config{Mode: proxy.ModeHTTP, Target: strings.TrimPrefix(backend.URL, "http://"),
		Source: as(t, a, "/server"), Guard: trust.NewGuard(mustPolicy(t).WithHTTPRules(rule), trust.ForHTTP())})
	client := trust.ClientConfig(as(t, a, "/client-ok"), guard(t, []string{"spiffe://example.org/server"}, nil))

	got := rawRequests(t, client, addr, get("GET", "/api/orders",
		"X_Forwarded_Client_Cert: By=spiffe://evil;URI=spiffe://example.org/admin",
		"x_forwarded_client_cert: URI=spiffe://example.org/admin",
		"X-Forwarded-Client-Cert: URI=spiffe://example.org/admin",
		"X_Forwarded_For: 203.0.113.1",
		"X_Forwarded_Host: evil.example",
		"X_Forwarded_Proto: https",
		"X_Forwarded_Prefix: /evil",
		"X_Real_IP: 203.0.113.2",
		"Forwarded: for=203.0.113.3"))
	if got[0].status != http.StatusOK {
		t.Fatalf("status %d: %q", got[0].status, got[0].body)
	}
	h := <-seen
	want := map[string]string{
		"x-forwarded-for":   "127.0.0.1",
		"x-forwarded-host":  "sworn.test",
		"x-forwarded-proto": "https",
	}
	found := map[string]int{}
	for name, values := range h {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if n != "forwarded" && n != "x-real-ip" && !strings.HasPrefix(n, "x-forwarded-") {
			continue
		}
		found[n] += len(values)
		if n == "x-forwarded-client-cert" {
			if len(values) != 1 || !strings.HasPrefix(values[0], "By=spiffe://example.org/server;Hash=") || !strings.HasSuffix(values[0], ";URI=spiffe://example.org/client-ok") {
				t.Errorf("backend saw %s: %q; want only the proxy's, naming the verified peer", name, values)
			}
			continue
		}
		if w, ok := want[n]; !ok || len(values) != 1 || values[0] != w {
			t.Errorf("backend saw %s: %q; want %q from the proxy and nothing from the client", name, values, w)
		}
	}
	for _, n := range []string{"x-forwarded-client-cert", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"} {
		if found[n] != 1 {
			t.Errorf("backend saw %d %s headers (in any spelling), want exactly the proxy's one", found[n], n)
		}
	}
	if tr := <-trailers; len(tr) != 0 {
		t.Errorf("backend saw trailers %q on a request without a body", tr)
	}

	// Trailers come after the body, where a backend that merges them into
	// the headers would read a forged peer: the proxy forwards none.
	got = rawRequests(t, client, addr, "POST /api/orders HTTP/1.1\r\nHost: sworn.test\r\nTransfer-Encoding: chunked\r\n"+
		"Trailer: X-Forwarded-Client-Cert, X-HTTP-Method-Override\r\nConnection: close\r\n\r\n"+
		"2\r\nhi\r\n0\r\nX-Forwarded-Client-Cert: URI=spiffe://example.org/admin\r\nX-HTTP-Method-Override: DELETE\r\n\r\n")
	if got[0].status != http.StatusOK {
		t.Fatalf("POST with trailers: status %d: %q", got[0].status, got[0].body)
	}
	<-seen
	if tr := <-trailers; len(tr) != 0 {
		t.Errorf("backend saw client trailers %q", tr)
	}
}
