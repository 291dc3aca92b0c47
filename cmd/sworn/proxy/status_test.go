package proxy_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/internal/testutil"
)

// getStatus fetches /_status from h and decodes it.
func getStatus(t *testing.T, h http.Handler) (int, proxy.Status) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_status", nil))
	var st proxy.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("/_status is not JSON: %v: %s", err, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("/_status Content-Type %q", ct)
	}
	return rec.Code, st
}

// TestStatusFollowsListeningSVIDAndBackend: /_status is 200 and ok only
// while the proxy listens, holds an unexpired SVID and reaches its target,
// names the SVID it presents, and says what is wrong otherwise.
func TestStatusFollowsListeningSVIDAndBackend(t *testing.T) {
	a := startAgent(t)
	b := newBackend(t)
	src := as(t, a, "/server")
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	p, err := proxy.New(proxy.Config{Mode: proxy.ModeServer, Target: b.addr, Source: src, Guard: guard(t, []string{"spiffe://example.org"}, nil),
		Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	proxy.NewMetrics(reg).Connections.WithLabelValues("accepted", "").Inc()
	h := p.StatusHandler(reg)

	if code, st := getStatus(t, h); code != http.StatusServiceUnavailable || st.OK || st.Ready || st.Message != "initializing" {
		t.Fatalf("before Serve: %d %+v, want 503 initializing", code, st)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, p, l)
	testutil.Eventually(t, "/_status ok once serving", func() bool { code, _ := getStatus(t, h); return code == http.StatusOK })
	code, st := getStatus(t, h)
	if !st.OK || !st.Ready || st.Status != "ok" || !st.BackendOK || st.Message != "listening" || st.Mode != proxy.ModeServer ||
		st.SPIFFEID != "spiffe://example.org/server" || st.SVIDExpiresAt == nil || !st.SVIDExpiresAt.Equal(svid.Certificates[0].NotAfter) {
		t.Fatalf("serving: %d %+v, want ok with the SVID expiring at %v", code, st, svid.Certificates[0].NotAfter)
	}

	late := svid.Certificates[0].NotAfter.Add(time.Second)
	now.Store(&late)
	if code, st := getStatus(t, h); code != http.StatusServiceUnavailable || st.Ready || !strings.HasPrefix(st.Message, "SVID expired at ") {
		t.Fatalf("past the SVID's expiry: %d %+v", code, st)
	}
	now.Store(&start)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_metrics", nil))
	if !strings.Contains(rec.Body.String(), `sworn_proxy_connections_total{reason="",result="accepted"} 1`) {
		t.Fatalf("/_metrics does not serve the proxy's metrics:\n%s", rec.Body)
	}
}

func TestStatusBackendCheck(t *testing.T) {
	a := startAgent(t)
	b := newBackend(t)
	anyPeer := guard(t, []string{"spiffe://example.org"}, nil)
	server := runProxy(t, proxy.Config{Mode: proxy.ModeServer, Target: b.addr, Source: as(t, a, "/server"), Guard: anyPeer})
	tests := []struct {
		name        string
		mode        proxy.Mode
		target      string
		allow       string
		wantOK      bool
		wantBackend string // in backend_error
	}{
		{name: "server mode, target up", mode: proxy.ModeServer, target: b.addr, allow: "spiffe://example.org", wantOK: true},
		{name: "server mode, target down", mode: proxy.ModeServer, target: testutil.FreeAddr(t), allow: "spiffe://example.org",
			wantBackend: "connection refused"},
		{name: "client mode, allowed server", mode: proxy.ModeClient, target: server, allow: "spiffe://example.org/server", wantOK: true},
		{name: "client mode, server not allowed", mode: proxy.ModeClient, target: server, allow: "spiffe://example.org/other-server",
			wantBackend: "mTLS handshake with the target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := proxy.New(proxy.Config{Mode: tt.mode, Target: tt.target, Source: as(t, a, "/client-ok"), Guard: guard(t, []string{tt.allow}, nil)})
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveOn(t, p, l)
			testutil.Eventually(t, "Serve started", func() bool { return p.Status(context.Background()).Message != "initializing" })
			st := p.Status(context.Background())
			if st.OK != tt.wantOK || st.BackendOK != tt.wantOK || !strings.Contains(st.BackendError, tt.wantBackend) ||
				(tt.wantBackend == "") != (st.BackendError == "") {
				t.Fatalf("status %+v, want ok=%v and a backend error containing %q", st, tt.wantOK, tt.wantBackend)
			}
		})
	}
}
