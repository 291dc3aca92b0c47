package proxy_test

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

// HTTP mode forwards to its target and nowhere else: an HTTP_PROXY in the
// proxy's environment must not receive the requests (with the verified
// peer's X-Forwarded-Client-Cert). Go's default transport would use it for
// any target that is not loopback, so the target here is a name that does
// not resolve: with the proxy variable honoured the request would reach
// the fake proxy, without it the dial fails and the client gets 502.
func TestHTTPModeIgnoresProxyEnvironment(t *testing.T) {
	fake, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	var leaked atomic.Int32
	go func() {
		for {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			leaked.Add(1)
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nleaked"))
			c.Close()
		}
	}()
	t.Setenv("HTTP_PROXY", "http://"+fake.Addr().String())
	t.Setenv("http_proxy", "http://"+fake.Addr().String())
	t.Setenv("NO_PROXY", "")

	a := startAgent(t)
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET /*")
	if err != nil {
		t.Fatal(err)
	}
	addr := runProxy(t, proxy.Config{Mode: proxy.ModeHTTP, Target: "backend.invalid:8080",
		Source: as(t, a, "/server"), Guard: trust.NewGuard(mustPolicy(t).WithHTTPRules(rule), trust.ForHTTP())})
	client := trust.ClientConfig(as(t, a, "/client-ok"), guard(t, []string{"spiffe://example.org/server"}, nil))
	got := rawRequests(t, client, addr, get("GET", "/x"))
	if got[0].status != http.StatusBadGateway || strings.Contains(got[0].body, "leaked") || leaked.Load() != 0 {
		t.Fatalf("status %d %q, %d connections to HTTP_PROXY; want 502 and none", got[0].status, got[0].body, leaked.Load())
	}
}
