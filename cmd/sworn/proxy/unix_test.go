package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/proxy"
	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

// serveOn runs p on l until the test ends, and returns l's address as a
// proxy address (unix:PATH for a Unix socket).
func serveOn(t *testing.T, p *proxy.Proxy, l net.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy.Serve: %v", err)
		}
	})
	if l.Addr().Network() == "unix" {
		return "unix:" + l.Addr().String()
	}
	return l.Addr().String()
}

// unixEcho serves an echo on a Unix socket in dir and returns its address.
func unixEcho(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "echo.sock")
	testutil.UnixEcho(t, path)
	return "unix:" + path
}

// echoOver sends a line over c and returns what came back.
func echoOver(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("echo over %s: %v", c.RemoteAddr(), err)
	}
	return got
}

// TestUnixSocketListenAndTarget: server mode takes mTLS on a Unix socket
// and forwards to a Unix socket; client mode takes plain connections on a
// Unix socket; each socket has the mode asked for and is gone after a
// clean stop.
func TestUnixSocketListenAndTarget(t *testing.T) {
	a := startAgent(t)
	dir := testutil.ShortTempDir(t, "px")
	server, err := proxy.New(proxy.Config{Mode: proxy.ModeServer, Target: unixEcho(t, dir), Source: as(t, a, "/server"),
		Guard: guard(t, []string{"spiffe://example.org/client-ok"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := proxy.Listen("unix:"+filepath.Join(dir, "server.sock"), 0o660)
	if err != nil {
		t.Fatal(err)
	}
	serverAddr := serveOn(t, server, sl)

	clientCfg := serverOnlyClient(t, a)
	raw, err := net.Dial("unix", strings.TrimPrefix(serverAddr, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	if got := echoOver(t, tls.Client(raw, clientCfg), "over mTLS"); got != "over mTLS\n" {
		t.Fatalf("server mode over Unix sockets echoed %q", got)
	}

	client, err := proxy.New(proxy.Config{Mode: proxy.ModeClient, Target: serverAddr, Source: as(t, a, "/client-ok"),
		Guard: guard(t, []string{"spiffe://example.org/server"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	clientSock := filepath.Join(dir, "client.sock")
	cl, err := proxy.Listen("unix:"+clientSock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Serve(ctx, cl) }()
	for sock, want := range map[string]fs.FileMode{strings.TrimPrefix(serverAddr, "unix:"): 0o660, clientSock: 0o600} {
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want a socket with mode %v", sock, fi.Mode(), err, want)
		}
	}
	plain, err := net.Dial("unix", clientSock)
	if err != nil {
		t.Fatal(err)
	}
	if got := echoOver(t, plain, "plain in"); got != "plain in\n" {
		t.Fatalf("client mode over Unix sockets echoed %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(clientSock); !os.IsNotExist(err) {
		t.Fatalf("the listen socket outlived a clean stop: %v", err)
	}
}

// serverOnlyClient is client-ok's TLS config, accepting only /server.
func serverOnlyClient(t *testing.T, a *agenttest.Agent) *tls.Config {
	t.Helper()
	return trust.ClientConfig(as(t, a, "/client-ok"), guard(t, []string{"spiffe://example.org/server"}, nil))
}

func TestHTTPModeToAUnixSocketTarget(t *testing.T) {
	a := startAgent(t)
	dir := testutil.ShortTempDir(t, "px")
	bl, err := net.Listen("unix", filepath.Join(dir, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" from "+r.Header.Get(proxy.XFCC))
	})}
	go func() { _ = app.Serve(bl) }()
	t.Cleanup(func() { app.Close() })

	p, err := proxy.New(proxy.Config{Mode: proxy.ModeHTTP, Target: "unix:" + bl.Addr().String(), Source: as(t, a, "/server"),
		Guard: guard(t, []string{"spiffe://example.org/client-ok"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, p, l)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: serverOnlyClient(t, a)}}
	resp, err := hc.Get("https://" + addr + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "GET /api/x from By=spiffe://example.org/server;") ||
		!strings.HasSuffix(string(body), ";URI=spiffe://example.org/client-ok") {
		t.Fatalf("through HTTP mode to a Unix socket: %d %q", resp.StatusCode, body)
	}
}

func TestListenRefusesASocketSomeoneServes(t *testing.T) {
	path := filepath.Join(testutil.ShortTempDir(t, "px"), "busy.sock")
	busy, err := proxy.Listen("unix:"+path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if l, err := proxy.Listen("unix:"+path, 0o600); err == nil || !strings.Contains(err.Error(), "another process is serving") {
		if l != nil {
			l.Close()
		}
		t.Fatalf("a second Listen on a served socket: %v, want it refused", err)
	}
	if _, err := proxy.Listen("unix:", 0o600); err == nil || !strings.Contains(err.Error(), "no socket path") {
		t.Fatalf("unix: without a path: %v", err)
	}
}

func TestIsLocal(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{addr: "unix:/run/app.sock", want: true},
		{addr: "127.0.0.1:8080", want: true},
		{addr: "127.8.9.10:8080", want: true},
		{addr: "[::1]:8080", want: true},
		{addr: "localhost:8080", want: true},
		{addr: "LocalHost:8080", want: true},
		{addr: ":8080", want: false},
		{addr: "0.0.0.0:8080", want: false},
		{addr: "[::]:8080", want: false},
		{addr: "10.0.0.5:8080", want: false},
		{addr: "db.internal:5432", want: false},
		{addr: "localhost.evil.example:80", want: false},
		{addr: "127.0.0.1", want: false}, // no port: not an address
	}
	for _, tt := range tests {
		if got := proxy.IsLocal(tt.addr); got != tt.want {
			t.Errorf("IsLocal(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
