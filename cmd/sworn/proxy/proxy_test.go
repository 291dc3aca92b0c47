package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/cmd/sworn/cli"
	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/trust"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// startAgent runs an agent that gives this test process several identities.
func startAgent(t testing.TB) *agenttest.Agent {
	t.Helper()
	self := fmt.Sprintf("unix:uid:%d", os.Geteuid())
	var rules []config.Rule
	for _, p := range []string{"server", "other-server", "client-ok", "client-other", "client-denied"} {
		rules = append(rules, config.Rule{SPIFFEID: "spiffe://example.org/" + p, Selectors: []string{self}})
	}
	return agenttest.Start(t, agenttest.Config(t, rules...))
}

// as opens a source whose default SVID is the one with the given path.
func as(t testing.TB, a *agenttest.Agent, path string) *workloadapi.X509Source {
	t.Helper()
	return a.Source(t, workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if s.ID.Path() == path {
				return s
			}
		}
		t.Errorf("no SVID for %s", path)
		return svids[0]
	}))
}

func guard(t *testing.T, allow, deny []string) *trust.Guard {
	t.Helper()
	p, err := trust.NewPolicy(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return trust.NewGuard(p)
}

// backend is a TCP echo server that counts what it receives.
type backend struct {
	addr   string
	conns  atomic.Int32 // accepted
	closed atomic.Int32 // handlers returned, their bytes counted
	bytes  atomic.Int64
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	b := &backend{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer b.closed.Add(1)
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					b.bytes.Add(int64(n))
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return b
}

// settled waits until every connection the backend accepted has ended, so
// its byte count is final, and returns the counts.
func (b *backend) settled(t *testing.T) (conns int32, bytes int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.closed.Load() != b.conns.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("backend: %d connections still open", b.conns.Load()-b.closed.Load())
		}
		time.Sleep(time.Millisecond)
	}
	return b.conns.Load(), b.bytes.Load()
}

// requireAlert fails unless err is the TLS alert a refused peer gets when
// the proxy rejects its certificate. A deadline means the proxy hung
// instead of refusing, which must not pass for a refusal.
func requireAlert(t *testing.T, what string, err error) {
	t.Helper()
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || !strings.Contains(err.Error(), "tls: bad certificate") {
		t.Fatalf("%s: %v, want the TLS alert \"bad certificate\"%s", what, err, hung(err))
	}
}

// requireClosed fails unless err shows the proxy closed the connection
// (EOF or a reset), not that the read hit its deadline.
func requireClosed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: %v, want the connection closed (EOF or reset)%s", what, err, hung(err))
	}
}

// hung explains a deadline error: the proxy hung instead of refusing.
func hung(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "; the proxy hung instead of refusing"
	}
	return ""
}

func runProxy(t testing.TB, cfg proxy.Config) string {
	t.Helper()
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy.Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// roundTrip dials addr with conf, sends msg and returns the echo.
func roundTrip(conf *tls.Config, addr, msg string) (string, error) {
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

type staticSource struct {
	svid    *x509svid.SVID
	bundles *workloadapi.X509Source
}

func (s staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }
func (s staticSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundles.GetX509BundleForTrustDomain(td)
}

func TestServerModeAdmitsOnlyAllowedPeers(t *testing.T) {
	a := startAgent(t)
	b := newBackend(t)
	addr := runProxy(t, proxy.Config{
		Mode: proxy.ModeServer, Target: b.addr, Source: as(t, a, "/server"),
		Guard: guard(t, []string{"spiffe://example.org/client-ok", "spiffe://example.org/client-denied"}, []string{"spiffe://example.org/client-denied"}),
	})
	serverOnly := guard(t, []string{"spiffe://example.org/server"}, nil)

	allowed := trust.ClientConfig(as(t, a, "/client-ok"), serverOnly)
	got, err := roundTrip(allowed, addr, "hello")
	if err != nil || got != "hello\n" {
		t.Fatalf("allowed peer: %q, %v", got, err)
	}
	connsBefore, bytesBefore := b.settled(t)

	foreign := agenttest.Start(t, agenttest.Config(t, config.Rule{SPIFFEID: "spiffe://example.org/client-ok", Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}}))
	foreignSVID, err := foreign.Source(t).GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	okSrc := as(t, a, "/client-ok")
	expired := expiredSVID(t, a, "/client-ok")

	refused := []struct {
		name string
		conf *tls.Config
	}{
		{name: "same trust domain, not allowed", conf: trust.ClientConfig(as(t, a, "/client-other"), serverOnly)},
		{name: "deny beats allow", conf: trust.ClientConfig(as(t, a, "/client-denied"), serverOnly)},
		{name: "allowed ID from a foreign CA", conf: trust.ClientConfig(staticSource{foreignSVID, okSrc}, serverOnly)},
		{name: "expired SVID", conf: trust.ClientConfig(staticSource{expired, okSrc}, serverOnly)},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			got, err := roundTrip(tt.conf, addr, "secret")
			requireAlert(t, fmt.Sprintf("refused peer (got %q)", got), err)
		})
	}
	// One more allowed connection is a barrier: the backend accepts in
	// order, so once it has echoed, any connection the proxy opened for a
	// refused peer has been accepted too; settled then waits for every
	// handler, so the byte count is final.
	if got, err := roundTrip(allowed, addr, "sync"); err != nil || got != "sync\n" {
		t.Fatalf("allowed peer after the refusals: %q, %v", got, err)
	}
	conns, bytes := b.settled(t)
	if conns != connsBefore+1 || bytes != bytesBefore+int64(len("sync\n")) {
		t.Fatalf("the backend saw %d more connections and %d more bytes from refused peers",
			conns-connsBefore-1, bytes-bytesBefore-int64(len("sync\n")))
	}
}

// expiredSVID has the agent's own CA sign an SVID that expired seconds
// ago. The CA never signs before its own NotBefore (the agent started it
// at most a moment ago, backdated by ca.Backdate), so the SVID is signed
// five seconds in the past and lives two.
func expiredSVID(t *testing.T, a *agenttest.Agent, path string) *x509svid.SVID {
	t.Helper()
	past := clocktesting.NewFakeClock(time.Now().Add(-5 * time.Second))
	c, err := local.New(local.Config{TrustDomain: td, Dir: a.Config.DataDir + "/ca", Clock: past})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ca.KeyECP256.Generate()
	chain, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, path), Key: key, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: spiffeid.RequireFromPath(td, path), Certificates: chain, PrivateKey: key}
}

func TestClientModeRefusesServersNotAllowed(t *testing.T) {
	a := startAgent(t)
	b := newBackend(t)
	anyClient := guard(t, []string{"spiffe://example.org"}, nil)
	// Two mTLS servers in front of the echo backend, with different IDs.
	good := runProxy(t, proxy.Config{Mode: proxy.ModeServer, Target: b.addr, Source: as(t, a, "/server"), Guard: anyClient})
	other := runProxy(t, proxy.Config{Mode: proxy.ModeServer, Target: b.addr, Source: as(t, a, "/other-server"), Guard: anyClient})

	for _, tt := range []struct {
		name, target string
		ok           bool
	}{
		{name: "allowed server", target: good, ok: true},
		{name: "server with another ID", target: other, ok: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			local := runProxy(t, proxy.Config{Mode: proxy.ModeClient, Target: tt.target, Source: as(t, a, "/client-ok"),
				Guard: guard(t, []string{"spiffe://example.org/server"}, nil)})
			c, err := net.Dial("tcp", local)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "plain\n")
			got, err := bufio.NewReader(c).ReadString('\n')
			if tt.ok && (err != nil || got != "plain\n") {
				t.Fatalf("through the client proxy: %q, %v", got, err)
			}
			if !tt.ok {
				requireClosed(t, fmt.Sprintf("a server that is not allowed (answered %q)", got), err)
			}
		})
	}
}

func TestHTTPModeDecidesEachRequestAndSetsXFCC(t *testing.T) {
	a := startAgent(t)
	var mu sync.Mutex
	var seen []http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		fmt.Fprint(w, "backend ", r.Method, " ", r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	rule, err := trust.ParseHTTPRule("spiffe://example.org/client-ok GET /api/*")
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := trust.NewPolicy(nil, nil)
	addr := runProxy(t, proxy.Config{Mode: proxy.ModeHTTP, Target: strings.TrimPrefix(backend.URL, "http://"),
		Source: as(t, a, "/server"), Guard: trust.NewGuard(pol.WithHTTPRules(rule), trust.ForHTTP())})

	serverOnly := guard(t, []string{"spiffe://example.org/server"}, nil)
	client := func(path string) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: trust.ClientConfig(as(t, a, path), serverOnly)}}
	}
	ok := client("/client-ok")
	req, _ := http.NewRequest("GET", "https://"+addr+"/api/orders", nil)
	req.Header.Set(proxy.XFCC, "By=spiffe://evil;URI=spiffe://example.org/admin")
	resp, err := ok.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "backend GET /api/orders" {
		t.Fatalf("allowed request: %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	xfcc := seen[0].Values(proxy.XFCC)
	mu.Unlock()
	if len(xfcc) != 1 || !strings.HasPrefix(xfcc[0], "By=spiffe://example.org/server;Hash=") || !strings.HasSuffix(xfcc[0], ";URI=spiffe://example.org/client-ok") {
		t.Fatalf("backend saw X-Forwarded-Client-Cert %q; want only the proxy's, naming the verified peer", xfcc)
	}

	for _, tt := range []struct{ method, path string }{{"POST", "/api/orders"}, {"GET", "/admin"}} {
		req, _ := http.NewRequest(tt.method, "https://"+addr+tt.path, nil)
		resp, err := ok.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s %s: %d, want 403", tt.method, tt.path, resp.StatusCode)
		}
	}
	if _, err := client("/client-other").Get("https://" + addr + "/api/orders"); err == nil {
		t.Fatal("a peer no rule names got through the handshake")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("the backend saw %d requests, want only the allowed one", len(seen))
	}
}

func TestRotationMidConnection(t *testing.T) {
	a := startAgent(t)
	b := newBackend(t)
	addr := runProxy(t, proxy.Config{Mode: proxy.ModeServer, Target: b.addr, Source: as(t, a, "/server"),
		Guard: guard(t, []string{"spiffe://example.org/client-ok"}, nil)})
	conf := trust.ClientConfig(as(t, a, "/client-ok"), guard(t, []string{"spiffe://example.org/server"}, nil))

	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func() string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "ping\n")
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("open connection broke: %v", err)
		}
		return s
	}
	echo()
	before := c.ConnectionState().PeerCertificates[0].SerialNumber

	cmd := cli.NewCommand(context.Background())
	cmd.SetOut(io.Discard)
	cmd.SetArgs([]string{"rotate", "svids", "--all", "--admin-socket", a.Config.AdminSocketPath})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		next, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		serial := next.ConnectionState().PeerCertificates[0].SerialNumber
		next.Close()
		if serial.Cmp(before) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new handshakes still use the old SVID")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := echo(); got != "ping\n" {
		t.Fatalf("open connection after rotation: %q", got)
	}
}

func mustPolicy(tb testing.TB, allow ...string) *trust.Policy {
	tb.Helper()
	p, err := trust.NewPolicy(allow, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
